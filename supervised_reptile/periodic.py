"""
Training's periodic evaluation: after every eval_interval-th meta-step, one task of the training
classes and one of the test classes are fine-tuned from the state that meta-step left, and their
accuracies logged (one task each, so they are coarse, as in the reference).

The pair never feeds back into training, so it is computed beside it, on a worker thread, while
the main thread goes on with the next meta-steps. On a CPU a meta-step's operations form one
chain that leaves part of the cores idle, and the pair fills them (docs/speed.md). It computes
what it would compute inline: its tasks are drawn from the run's generator on the main thread,
at the step they always were, and it starts from a snapshot of the weights and optimizer state
taken right after its meta-step (reptile.Snapshot). Its results are logged on the main thread, in
step order, as soon as they are ready and at the latest before the next pair starts or a
checkpoint is written.

With a tf.distribute strategy of several replicas, evaluation and training both issue
collectives, which every replica must meet in the same order: the pair then runs inline.
"""

from concurrent.futures import Future, ThreadPoolExecutor


class PeriodicEvaluation:
    """The periodic pair of evaluator on (tasks.py source, summaries.ScalarWriter) logged_sets
    (the training set's first); a context manager whose worker thread ends with it. A pair still
    running when an error ends training is dropped."""

    def __init__(self, evaluator, logged_sets, log_fn):
        self.evaluator = evaluator
        self.logged_sets = logged_sets
        self.log_fn = log_fn
        beside = evaluator.strategy is None
        self._worker = ThreadPoolExecutor(1, 'periodic-evaluation') if beside else None
        self._pending = None  # (step, training loss, jobs, future of their query outputs)

    def __enter__(self):
        return self

    def __exit__(self, error_type, *_):
        try:
            if error_type is None:
                self.finish()
        finally:
            if self._worker:
                self._worker.shutdown(wait=True, cancel_futures=True)

    def start(self, step, loss):
        """Evaluate the state after meta-step `step`, whose last inner mini-batches' loss was
        loss, on a task of each logged set drawn now (in the sets' order)."""
        self.finish()
        jobs = [self.evaluator.jobs(source, 1)[0] for source, _ in self.logged_sets]
        snapshot = self.evaluator.reptile.snapshot()
        if self._worker:
            future = self._worker.submit(self.evaluator.query_logits, jobs, start=snapshot)
        else:
            future = Future()
            future.set_result(self.evaluator.query_logits(jobs, start=snapshot))
        self._pending = (step, loss, jobs, future)

    def log_if_done(self):
        """Log the pending pair if its results are ready."""
        if self._pending and self._pending[-1].done():
            self.finish()

    def finish(self):
        """Wait for the pending pair, if any, and log it: its accuracies (and the training loss)
        to TensorBoard and a line to log_fn."""
        if self._pending is None:
            return
        step, loss, jobs, future = self._pending
        self._pending = None
        outputs = future.result()
        accuracies = [source.task_scores(outputs[i:i + 1], jobs[i:i + 1],
                                         self.evaluator.reptile.loss)[0]
                      for i, (source, _) in enumerate(self.logged_sets)]
        for (_, writer), accuracy in zip(self.logged_sets, accuracies):
            writer.scalars(step, accuracy=accuracy)
        self.logged_sets[0][1].scalars(step, loss=loss)
        self.log_fn('batch %d: train=%f test=%f' % (step, *accuracies))
