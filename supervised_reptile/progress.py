"""Throughput and time-left reports for long loops."""

import time


class Progress:
    """Counts finished units of work out of a total and describes the rate."""

    def __init__(self, total, done=0):
        self.total = total
        self._start_done = done
        self._start_time = time.monotonic()
        self.done = done

    def advance(self, count=1):
        self.done += count

    def rate(self):
        elapsed = time.monotonic() - self._start_time
        return (self.done - self._start_done) / elapsed if elapsed > 0 else 0.0

    def describe(self, unit):
        rate = self.rate()
        left = (self.total - self.done) / rate if rate > 0 else float('inf')
        return '%d/%d %s, %.2f %s/s, %s left' % (self.done, self.total, unit, rate, unit,
                                                 _duration(left))


def _duration(seconds):
    if seconds == float('inf'):
        return '?'
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return '%dh%02dm' % (hours, minutes) if hours else '%dm%02ds' % (minutes, seconds)
