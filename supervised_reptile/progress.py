"""Throughput and time-left reports for long loops."""

import time

# Advances whose time the rate leaves out. The first unit of a loop of compiled functions
# includes their tracing, which can take as long as thousands of later units, and the work done
# once right after it (training's first periodic evaluation traces its own function, the first
# checkpoint is written) ends before the second unit does.
WARM_UP_ADVANCES = 2


class Progress:
    """Counts finished units of work out of a total and describes the rate.

    The rate counts the units finished since the end of the second advance (WARM_UP_ADVANCES),
    so that tracing does not make the first estimates of the time left hours too long; until
    then, describe() says the time left is being estimated.
    """

    def __init__(self, total, done=0):
        self.total = total
        self.done = done
        self._advances = 0
        self._measured_from = None  # (done, time) at the end of the warm-up

    def advance(self, count=1):
        self.done += count
        self._advances += 1
        if self._advances == WARM_UP_ADVANCES:
            self._measured_from = (self.done, time.monotonic())

    def rate(self):
        """Units a second since the warm-up; 0.0 before any unit after it."""
        if self._measured_from is None:
            return 0.0
        done_then, then = self._measured_from
        elapsed = time.monotonic() - then
        return (self.done - done_then) / elapsed if elapsed > 0 else 0.0

    def describe(self, unit):
        rate = self.rate()
        if rate <= 0:
            counted = '%d/%d %s' % (self.done, self.total, unit)
            return counted if self.done >= self.total else counted + ', estimating the time left'
        left = (self.total - self.done) / rate
        return '%d/%d %s, %.2f %s/s, %s left' % (self.done, self.total, unit, rate, unit,
                                                 _duration(left))


def _duration(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return '%dh%02dm' % (hours, minutes) if hours else '%dm%02ds' % (minutes, seconds)
