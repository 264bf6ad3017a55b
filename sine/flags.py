"""
The flags of `python -m sine`, and the Settings they turn into.

Nothing else in sine/ reads a flag. The flags are defined on request, on the FlagValues the
caller gives (the entry point gives absl's global FLAGS): they share their names with
run_omniglot.py's (--seed, --meta-iters, ...) on purpose, and the two sets cannot be defined
in one FlagValues, as they would be in a test session that imports both.

A preset (presets.py) supplies defaults for some flags; flags given on the command line win.
Bad values raise UserError, which the entry point reports as one line.

The first-order MAML and the Adam here are named fomaml-gradient and adam-pytorch, as they are
not supervised_reptile's (see algorithms.py and optimizers.py); their old names, fomaml and
adam, are still accepted, with a note.
"""

from dataclasses import dataclass
import functools

from absl import flags

from supervised_reptile.errors import UserError

from . import presets
from .algorithms import ALGORITHMS
from .optimizers import SGD, PyTorchAdam, RMSProp
from .tasks import FAMILIES
from .train import Schedule

OPTIMIZERS = ('sgd', 'adam-pytorch', 'rmsprop')

# Old names of renamed values, by flag: command lines written before the renaming still run.
RENAMED = {'algorithm': {'fomaml': 'fomaml-gradient'}, 'inner-optimizer': {'adam': 'adam-pytorch'}}

_FLAGS = [
    (flags.DEFINE_string, 'preset', presets.DEFAULT,
     'a named experiment whose settings become the defaults; "list" lists them'),
    (flags.DEFINE_list, 'algorithm', ['reptile'],
     'meta-learning algorithm: reptile, fomaml-gradient (first-order MAML stepping by the inner '
     "step size times the last mini-batch's gradient, unlike supervised_reptile's --foml, which "
     "takes the inner optimiser's last step) or maml; several (comma-separated) are trained in "
     'turn and compared (fomaml: the old name of fomaml-gradient)'),
    (functools.partial(flags.DEFINE_enum, enum_values=list(FAMILIES)), 'family', 'sine',
     'tasks: sine (the paper), mixture (sine or Fourier series) or radial2d '
     '(a sin(x^2 + y^2 + p))'),
    (flags.DEFINE_float, 'amplitude-min', 0.1, 'smallest task amplitude'),
    (flags.DEFINE_float, 'amplitude-max', 5.0, 'largest task amplitude'),
    (flags.DEFINE_list, 'hidden', ['64', '64'], 'widths of the tanh hidden layers'),
    (flags.DEFINE_list, 'inner-optimizer', ['sgd'],
     "inner-loop optimiser: sgd, adam-pytorch (PyTorch's Adam, epsilon added to the "
     "bias-corrected root, unlike supervised_reptile's TF1 Adam) or rmsprop (PyTorch's); "
     'several are trained in turn (adam: the old name of adam-pytorch)'),
    (flags.DEFINE_list, 'learning-rate', ['0.02'],
     'inner step size: one for every optimiser, or one per --inner-optimizer'),
    (flags.DEFINE_float, 'adam-beta1', 0.1,
     "adam-pytorch's first-moment decay (the review's value)"),
    (flags.DEFINE_float, 'adam-beta2', 0.99,
     "adam-pytorch's second-moment decay (the review's value)"),
    (flags.DEFINE_float, 'rmsprop-rho', 0.9, "RMSProp's decay (the review's value)"),
    (flags.DEFINE_float, 'epsilon', 1e-8, 'the epsilon of adam-pytorch and rmsprop'),
    (flags.DEFINE_bool, 'reset-inner-state', True,
     'give every task a fresh inner optimiser state (else the state carries over from task to '
     'task, and test tasks start from where training left it)'),
    (flags.DEFINE_integer, 'inner-batch', 10, 'grid points per inner mini-batch in meta-training'),
    (flags.DEFINE_integer, 'inner-iters', 5, 'inner steps per task in meta-training'),
    (flags.DEFINE_float, 'meta-step', 0.1, 'meta step size at the start'),
    (flags.DEFINE_float, 'meta-step-final', 0.0, 'meta step size by the end (annealed linearly)'),
    (flags.DEFINE_integer, 'meta-batch', 1, 'tasks per meta-iteration'),
    (flags.DEFINE_integer, 'meta-iters', 30000, 'meta-iterations'),
    (flags.DEFINE_integer, 'shots', 10, 'points a test task shows the learner'),
    (flags.DEFINE_integer, 'eval-iters', 32, 'inner steps at test time (full batch on the shots)'),
    (flags.DEFINE_integer, 'eval-samples', 1000, 'held-out test tasks'),
    (flags.DEFINE_integer, 'eval-interval', 0,
     'also evaluate every this many meta-iterations (0: only at the end)'),
    (flags.DEFINE_bool, 'every-step', True,
     'measure the test MSE after every inner step (else after 0, 1, 4, 8, ... steps)'),
    (flags.DEFINE_bool, 'joint-baseline', True,
     'also train and evaluate joint training (plain training on the expected loss); training '
     'from scratch is always evaluated'),
    (flags.DEFINE_float, 'joint-learning-rate', 0.02,
     'step size of joint training, annealed linearly to 0 over --meta-iters'),
    (flags.DEFINE_integer, 'seed', 0, 'random seed (initialisation, training and held-out tasks)'),
    (flags.DEFINE_string, 'output-dir', 'sine_output', 'where the figures and metrics.json go'),
    (flags.DEFINE_integer, 'chunk', 1000,
     'meta-iterations per compiled call; a progress line follows each'),
]


def define(flag_values):
    """Define the flags on flag_values (an absl FlagValues)."""
    for define_flag, name, default, help_text in _FLAGS:
        define_flag(name, default, help=help_text, flag_values=flag_values)


@dataclass(frozen=True)
class Run:
    """One meta-learning run: an algorithm with an inner optimiser."""
    algorithm: str
    optimizer: object


@dataclass(frozen=True)
class Settings:
    """Everything an experiment needs, as plain values and objects."""
    family: object
    layer_sizes: list
    runs: list
    reset_state: bool
    schedule: Schedule
    joint_schedule: Schedule
    joint_baseline: bool
    num_shots: int
    eval_iters: int
    eval_samples: int
    eval_at: list
    record_steps: list
    report_steps: list
    seed: int
    output_dir: str
    chunk: int
    flag_values: dict
    notes: tuple  # lines to print before the run: old names that were replaced

    @property
    def optimizers(self):
        """The distinct inner optimisers of the runs, in order."""
        return list(dict.fromkeys(run.optimizer for run in self.runs))


def wants_preset_listing(flag_values):
    return flag_values['preset'].value == 'list'


def settings(flag_values):
    """The Settings of parsed flags, their preset applied. Raises UserError on bad input."""
    values, notes = _renamed(_values_with_preset(flag_values))
    _check_ranges(values)
    family = FAMILIES[values['family']](amplitude=(values['amplitude-min'],
                                                   values['amplitude-max']))
    meta_iters, eval_iters, interval = (values['meta-iters'], values['eval-iters'],
                                        values['eval-interval'])
    report_steps = sorted({0, 1, eval_iters} | {2 ** k for k in range(2, eval_iters.bit_length())})

    def schedule(step_size, step_size_final):
        return Schedule(meta_iters, step_size, step_size_final, values['meta-batch'],
                        values['inner-iters'], values['inner-batch'])

    return Settings(
        family=family,
        layer_sizes=[family.input_dim] + _positive_ints(values, 'hidden') + [1],
        runs=[Run(algorithm, optimizer) for optimizer in _optimizers(values)
              for algorithm in _algorithms(values)],
        reset_state=values['reset-inner-state'],
        schedule=schedule(values['meta-step'], values['meta-step-final']),
        joint_schedule=schedule(values['joint-learning-rate'], 0.0),
        joint_baseline=values['joint-baseline'],
        num_shots=values['shots'],
        eval_iters=eval_iters,
        eval_samples=values['eval-samples'],
        eval_at=list(range(interval, meta_iters, interval)) if interval else [],
        record_steps=list(range(eval_iters + 1)) if values['every-step'] else report_steps,
        report_steps=report_steps,
        seed=values['seed'],
        output_dir=values['output-dir'],
        chunk=values['chunk'],
        flag_values=values,
        notes=notes)


def _values_with_preset(flag_values):
    """The values of the flags by name, the preset's value for each flag not given."""
    name = flag_values['preset'].value
    if name not in presets.PRESETS:
        raise UserError('unknown --preset %s; --preset list lists them' % name)
    values = {flag: flag_values[flag].value for _, flag, _, _ in _FLAGS}
    for flag, value in presets.PRESETS[name].flags.items():
        if not flag_values[flag].present:
            values[flag] = flag_values[flag].parser.parse(value)
    return values


def _renamed(values):
    """The values with the old names of RENAMED replaced by the new ones, and a note for each."""
    values, notes = dict(values), []
    for flag, new_names in RENAMED.items():
        notes += ["note: --%s %s is now called %s, as it is not supervised_reptile's "
                  '(docs/sine.md)' % (flag, name, new_names[name])
                  for name in values[flag] if name in new_names]
        values[flag] = [new_names.get(name, name) for name in values[flag]]
    return values, tuple(notes)


def _check_ranges(values):
    for name in ('inner-batch', 'inner-iters', 'meta-batch', 'meta-iters', 'shots', 'eval-iters',
                 'chunk'):
        if values[name] < 1:
            raise UserError('--%s must be at least 1' % name)
    for name in ('eval-interval', 'meta-step', 'meta-step-final', 'joint-learning-rate',
                 'amplitude-min', 'epsilon'):
        if values[name] < 0:
            raise UserError('--%s must not be negative' % name)
    if values['eval-samples'] < 2:
        raise UserError('--eval-samples must be at least 2, for a confidence interval')
    if values['amplitude-min'] > values['amplitude-max']:
        raise UserError('--amplitude-min must not exceed --amplitude-max')
    for name in ('adam-beta1', 'adam-beta2', 'rmsprop-rho'):
        if not 0 <= values[name] < 1:
            raise UserError('--%s must be in [0, 1)' % name)


def _algorithms(values):
    algorithms = _names(values, 'algorithm', ALGORITHMS)
    if values['inner-iters'] < 2 and set(algorithms) & {'fomaml-gradient', 'maml'}:
        raise UserError('(first-order) MAML needs --inner-iters of at least 2: its '
                        'meta-gradient is taken on the last mini-batch, after steps on the others')
    return algorithms


def _optimizers(values):
    names = _names(values, 'inner-optimizer', OPTIMIZERS)
    rates = values['learning-rate']
    if len(rates) not in (1, len(names)):
        raise UserError('give one --learning-rate, or one per --inner-optimizer (%d)' % len(names))
    try:
        rates = [float(rate) for rate in rates]
    except ValueError:
        raise UserError('--learning-rate takes numbers, not %s' % ','.join(rates)) from None
    if min(rates) <= 0:
        raise UserError('--learning-rate must be positive')
    rates = rates * len(names) if len(rates) == 1 else rates
    return [_optimizer(values, name, rate) for name, rate in zip(names, rates)]


def _optimizer(values, name, learning_rate):
    if name == 'adam-pytorch':
        return PyTorchAdam(learning_rate, values['adam-beta1'], values['adam-beta2'],
                           values['epsilon'])
    if name == 'rmsprop':
        return RMSProp(learning_rate, values['rmsprop-rho'], values['epsilon'])
    return SGD(learning_rate)


def _names(values, flag, allowed):
    names = values[flag]
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        raise UserError('--%s takes %s, not %s' % (flag, ', '.join(allowed),
                                                  ','.join(unknown) or 'nothing'))
    if len(set(names)) < len(names):
        raise UserError('--%s names %s more than once' % (flag, ','.join(names)))
    return names


def _positive_ints(values, flag):
    try:
        numbers = [int(value) for value in values[flag]]
    except ValueError:
        numbers = []
    if not numbers or min(numbers) < 1:
        raise UserError('--%s takes positive whole numbers, not %s'
                        % (flag, ','.join(values[flag]) or 'nothing'))
    return numbers
