"""
The inner loop, written once: input lookup, the summed loss, the Adam and SGD rules, one inner
step, fine-tuning on a sequence of mini-batches, and the prediction of queries.

The inner loop trains k tasks side by side (one task is the case k = 1). Its state (InnerState)
is held in variables of its own: for each variable the loop trains, the k tasks' copies as one
variable [k, *shape], the optimizer's slots likewise, and one step count. The rules update them
in place with TensorFlow's fused kernels (ResourceApplyAdam, the op TF1's AdamOptimizer ran, so
the reference's arithmetic): one op per variable for all k tasks, where the same update written
as tensor arithmetic takes about ten ops and as many passes over memory, and with the
reference's tiny batches those ops, not the convolutions, would be much of a step's cost.
Callers decide what a state starts from and what becomes of it: Reptile's meta-step chains the
optimizer state from task to task, evaluation starts every task from the same state and keeps
nothing.

The arithmetic is the reference's: before each step the weights are multiplied by the weight
decay rate, then one optimizer step is taken on the loss reduced over the mini-batch: SUMMED,
as the reference minimises it (the run scripts), or averaged, as Keras' losses are (the
library's default). By default the loss is the softmax cross-entropy of integer labels; any
per-example loss works, regression's squared error included. A batch of tasks minimises the
sum of the tasks' losses; since every task has its own weights, each task's gradient is the one
it would have alone.
"""

from dataclasses import dataclass

import tensorflow as tf


def as_inputs(values):
    """Stored values as model inputs: uint8 arrays are images, scaled to floats in [0, 1]; any
    other type is cast to float32 as it is."""
    if values.dtype == tf.uint8:
        return tf.cast(values, tf.float32) / 255.0
    return tf.cast(values, tf.float32)


def gather_inputs(pool, indices):
    """Look up inputs by index in one pool [n, ...] (see as_inputs)."""
    return as_inputs(tf.gather(pool, indices))


def gather_task_inputs(pools, positions):
    """Each task's inputs from its own pool: pools [k, n, ...], positions [k, m] -> floats
    [k, m, ...] (see as_inputs)."""
    return as_inputs(tf.gather(pools, positions, batch_dims=1))


def sparse_softmax_cross_entropy(labels, logits):
    """The per-example cross-entropy of integer labels [b] and logits [b, classes]: the
    reference's loss."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


# How a mini-batch's per-example losses become the one loss a step minimises.
REDUCTIONS = {'sum': tf.reduce_sum, 'mean': tf.reduce_mean}


def reduced_loss(loss, targets, outputs, reduction='sum'):
    """loss (per-example values of targets [b, ...] and outputs [b, ...]) reduced over a
    mini-batch ('sum', as the reference minimises it, or 'mean'; it matters for SGD): [k, b, ...]
    targets and outputs give one loss per task, [k].

    Each task's loss is its own op: a kernel's rounding may depend on where an element sits in
    its input, and a task's numbers must not depend on the tasks beside it."""
    reduce = REDUCTIONS[reduction]
    return tf.stack([reduce(loss(task_targets, task_outputs))
                     for task_targets, task_outputs in zip(tf.unstack(targets),
                                                           tf.unstack(outputs))])


@dataclass(frozen=True)
class Adam:
    """Adam as TF1's AdamOptimizer computes it. The reference's settings are beta_1 = 0 (no
    momentum), beta_2 = 0.999 and TF1's epsilon, 1e-8."""
    learning_rate: float
    beta_1: float = 0.0
    beta_2: float = 0.999
    epsilon: float = 1e-8
    num_slots = 2  # the first and second moment estimates

    def apply(self, variable, slots, gradient, step):
        """Update variable and its slots in place, at step (counted from 1)."""
        first, second = slots
        step = tf.cast(step, variable.dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=first.handle, v=second.handle,
            beta1_power=self.beta_1 ** step, beta2_power=self.beta_2 ** step,
            lr=tf.constant(self.learning_rate, variable.dtype),
            beta1=tf.constant(self.beta_1, variable.dtype),
            beta2=tf.constant(self.beta_2, variable.dtype),
            epsilon=tf.constant(self.epsilon, variable.dtype), grad=gradient)


@dataclass(frozen=True)
class SGD:
    """Plain gradient descent (--sgd); it has no slots."""
    learning_rate: float
    num_slots = 0

    def apply(self, variable, slots, gradient, step):
        del slots, step
        tf.raw_ops.ResourceApplyGradientDescent(
            var=variable.handle, alpha=tf.constant(self.learning_rate, variable.dtype),
            delta=gradient)


class OptimizerState(tf.Module):
    """An optimizer rule's slots (num_slots variables per weight variable, each of its shape)
    and its step count: what a checkpoint saves as the optimizer's state."""

    def __init__(self, rule, shapes, **variable_options):
        super().__init__(name='optimizer')
        self.slots = [[tf.Variable(tf.zeros(shape), trainable=False, **variable_options)
                       for _ in range(rule.num_slots)] for shape in shapes]
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, **variable_options)


class InnerState:
    """The state of k tasks' inner loops, in variables: weights (one variable [k, *shape] for
    each trained variable of the given shapes) and an OptimizerState of the same shapes.

    Made outside compiled functions. With a tf.distribute strategy, every replica of it has its
    own copy (synchronised on read, never written across replicas)."""

    def __init__(self, rule, num_tasks, shapes, strategy=None):
        if strategy is None:
            self._make(rule, num_tasks, shapes)
            return
        with strategy.scope():
            self._make(rule, num_tasks, shapes, synchronization=tf.VariableSynchronization.ON_READ,
                       aggregation=tf.VariableAggregation.NONE)

    def _make(self, rule, num_tasks, shapes, **options):
        task_shapes = [(num_tasks, *shape) for shape in shapes]
        self.weights = [tf.Variable(tf.zeros(shape), trainable=False, **options)
                        for shape in task_shapes]
        self.optimizer = OptimizerState(rule, task_shapes, **options)

    def start(self, weights, slots, step):
        """Give every task these weights and slots (values of one task's shapes, or per-task
        [k, *shape]), and set the step count."""
        for variable, value in zip(self.weights, weights):
            variable.assign(tf.broadcast_to(value, variable.shape))
        for variables, values in zip(self.optimizer.slots, slots):
            for variable, value in zip(variables, values):
                variable.assign(tf.broadcast_to(value, variable.shape))
        self.optimizer.iterations.assign(step)

    def read_weights(self):
        return [variable.read_value() for variable in self.weights]


class InnerLoop:
    """Inner steps of a network (networks.TaskNetwork) with an optimizer rule, the reference's
    weight decay (a rate multiplying the weights before each step; 1 is none) and a per-example
    loss of (targets, outputs), reduced over each mini-batch (see reduced_loss)."""

    def __init__(self, network, rule, weight_decay=1.0, loss=sparse_softmax_cross_entropy,
                 reduction='sum'):
        self.network = network
        self.rule = rule
        self.weight_decay = weight_decay
        self.loss = loss
        self.reduction = reduction

    def step(self, state, inputs, targets, shared=()):
        """One step of every task on its mini-batch, in place: inputs [k, b, ...] (floats),
        targets [k, b, ...] (shared: see networks.TaskNetwork). Returns each task's loss [k] and
        the outputs [k, b, ...], both measured before the update."""
        if self.weight_decay != 1:
            for variable in state.weights:
                variable.assign(variable * self.weight_decay)
        # Only the trained weights are watched: frozen variables, read by the network, stay off
        # the tape, and no gradient op is built for them.
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            weights = state.read_weights()
            tape.watch(weights)
            outputs = self.network(weights, inputs, shared)
            losses = reduced_loss(self.loss, targets, outputs, self.reduction)
            total = tf.reduce_sum(losses)
        gradients = tape.gradient(total, weights)
        step = state.optimizer.iterations.assign_add(1)
        for variable, slots, gradient in zip(state.weights, state.optimizer.slots, gradients):
            self.rule.apply(variable, slots, gradient, step)
        return losses, outputs

    def fine_tune(self, state, batches, num_batches, shared=()):
        """Take num_batches steps; batches(i) gives the i-th (inputs, targets). Returns each
        task's loss on the last mini-batch (zeros if there was none)."""
        losses = tf.zeros(state.weights[0].shape[:1])
        for index in tf.range(num_batches):
            losses, _ = self.step(state, *batches(index), shared)
        return losses

    def predict(self, state, support, queries, transductive, shared=()):
        """Outputs of each task's queries [k, q, ...] from support [k, s, ...] and queries
        [k, q, ...] (shared: see networks.TaskNetwork). Batch normalization uses batch
        statistics, so the batching is the protocol:
        transductive, all queries form one batch; otherwise each query is classified in a batch
        with the whole support set, its own row last."""
        weights = state.read_weights()
        if transductive:
            return self.network(weights, queries, shared)
        return tf.stack([self.network(weights, tf.concat([support, queries[:, q:q + 1]], 1),
                                      shared)[:, -1]
                         for q in range(queries.shape[1])], axis=1)
