"""
Named configurations (`--preset NAME`): the flag values of each published run, where they come
from, and the published cell (published.py) a run of them is to be compared with.

A preset's values take the place of the flags' defaults; flags given on the command line win
(args.py applies them). Every source anneals the meta step linearly to 0, so every preset has
--meta-step-final 0. Settings no source mentions keep the reference's defaults (--weight-decay 1,
no --replacement, --eval-samples 10000, Adam unless the preset says --sgd).
"""

from dataclasses import dataclass

from . import published

SCRIPTS = {'omniglot': 'run_omniglot.py', 'miniimagenet': 'run_miniimagenet.py'}
LIST = 'list'


@dataclass(frozen=True)
class Preset:
    """A configuration: its dataset, where its values come from, which published source's cell it
    reproduces, and the flag values (flag name -> value)."""
    dataset: str
    origin: str
    reproduces: str
    flags: dict

    @property
    def setting(self):
        return published.Setting.from_flags(self.dataset, self.flags)

    def cell(self):
        """The published cell this configuration reproduces."""
        return published.cell(self.reproduces, self.setting)

    def command(self):
        """The command line this preset stands for (flags that are off are left out)."""
        words = [SCRIPTS[self.dataset]]
        for name, value in self.flags.items():
            if value is True:
                words.append('--' + name)
            elif value is not False:
                words.append('--%s %s' % (name, value))
        return ' '.join(words)


def _flags(shots, classes, train_shots, inner_batch, inner_iters, learning_rate, meta_step,
           meta_batch, meta_iters, eval_batch, eval_iters, transductive=False):
    """Flag values in the order the sources' tables give them."""
    return {
        'shots': shots, 'classes': classes, 'train-shots': train_shots,
        'inner-batch': inner_batch, 'inner-iters': inner_iters,
        'learning-rate': float(learning_rate), 'meta-step': float(meta_step),
        'meta-step-final': 0.0, 'meta-batch': meta_batch, 'meta-iters': meta_iters,
        'eval-batch': eval_batch, 'eval-iters': eval_iters, 'transductive': transductive,
    }


def _transductive(values):
    return dict(values, transductive=True)


# The reference README's commands, which are the final version's Appendix A.
_O15 = _flags(1, 5, 10, 10, 5, 0.001, 1, 5, 100000, 5, 50)
_O55 = _flags(5, 5, 10, 10, 5, 0.001, 1, 5, 100000, 5, 50)
_O120 = _flags(1, 20, 10, 20, 10, 0.0005, 1, 5, 200000, 10, 50)
_O520 = _flags(5, 20, 10, 20, 10, 0.0005, 1, 5, 200000, 10, 50)
_M15 = _flags(1, 5, 15, 10, 8, 0.001, 1, 5, 100000, 5, 50)
_M55 = _flags(5, 5, 15, 10, 8, 0.001, 1, 5, 100000, 15, 50)

# The early version's Tables 3 (Omniglot) and 4 (Mini-ImageNet), tuned without transduction.
_EARLY_O15 = _flags(1, 5, 12, 5, 12, 4.4e-4, 1.0, 3, 200000, 5, 86)
_EARLY_O120 = _flags(1, 20, 9, 15, 12, 4.4e-4, 1.0, 3, 200000, 10, 97)
_EARLY_O55 = _flags(5, 5, 10, 10, 5, 1.5e-3, 0.7, 5, 100000, 6, 100)
_EARLY_O520 = _flags(5, 20, 12, 20, 12, 4.6e-4, 1.0, 3, 200000, 10, 97)
_EARLY_M15 = _flags(1, 5, 12, 3, 19, 1.2e-3, 0.235, 2, 200000, 3, 55)
_EARLY_M55 = _flags(5, 5, 15, 10, 8, 2.2e-4, 1.0, 5, 200000, 15, 88)

_README = 'reference README, row %d'
_README_TRANSDUCTIVE = ('reference README, row %d, plus --transductive (the paper reports this '
                        'cell; the README has no command for it, so these values are presumed)')
_EARLY_TRANSDUCTIVE = ("early version, Table %d, %s column, plus --transductive (the paper: "
                       "non-transductive hyper-parameters served for transduction too, except "
                       "1-shot 5-way: Table 5)")
_REVIEW = ("2022 review, Table %d, %s (all its runs are transductive; --meta-step-final 0 is the "
           "reference README's, which the review's code ran: its table has no final step)")

_PRESETS = {
    'o15t': ('omniglot', _README % 1, published.FINAL, _transductive(_O15)),
    'm15t': ('miniimagenet', _README % 2, published.FINAL, _transductive(_M15)),
    'm55': ('miniimagenet', _README % 3, published.FINAL, _M55),
    'm15': ('miniimagenet', _README % 4, published.FINAL, _M15),
    'o55': ('omniglot', _README % 5, published.FINAL, _O55),
    'o15': ('omniglot', _README % 6, published.FINAL, _O15),
    'o120': ('omniglot', _README % 7, published.FINAL, _O120),
    'o520': ('omniglot', _README % 8, published.FINAL, _O520),
    'o55t': ('omniglot', _README_TRANSDUCTIVE % 5, published.FINAL, _transductive(_O55)),
    'o120t': ('omniglot', _README_TRANSDUCTIVE % 7, published.FINAL, _transductive(_O120)),
    'o520t': ('omniglot', _README_TRANSDUCTIVE % 8, published.FINAL, _transductive(_O520)),
    'm55t': ('miniimagenet', 'reference README, row 3, plus --transductive: the command the '
             'maintainer gives for this cell in issue #15', published.FINAL, _transductive(_M55)),
    'early-o15': ('omniglot', 'early version, Table 3, 1-shot 5-way column', published.EARLY,
                  _EARLY_O15),
    'early-o120': ('omniglot', 'early version, Table 3, 1-shot 20-way column', published.EARLY,
                   _EARLY_O120),
    'early-o55': ('omniglot', 'early version, Table 3, 5-shot 5-way column', published.EARLY,
                  _EARLY_O55),
    'early-o520': ('omniglot', 'early version, Table 3, 5-shot 20-way column', published.EARLY,
                   _EARLY_O520),
    'early-m15': ('miniimagenet', 'early version, Table 4, 1-shot 5-way column', published.EARLY,
                  _EARLY_M15),
    'early-m55': ('miniimagenet', 'early version, Table 4, 5-shot 5-way column', published.EARLY,
                  _EARLY_M55),
    'early-o15t': ('omniglot', 'early version, Table 5 (tuned for transduction), Omniglot column',
                   published.EARLY, _flags(1, 5, 15, 25, 3, 0.001, 1, 10, 100000, 5, 5, True)),
    'early-m15t': ('miniimagenet', 'early version, Table 5 (tuned for transduction), '
                   'Mini-ImageNet column',
                   published.EARLY, _flags(1, 5, 15, 5, 15, 0.001, 1, 10, 100000, 5, 10, True)),
    'early-o55t': ('omniglot', _EARLY_TRANSDUCTIVE % (3, '5-shot 5-way'), published.EARLY,
                   _transductive(_EARLY_O55)),
    'early-o120t': ('omniglot', _EARLY_TRANSDUCTIVE % (3, '1-shot 20-way'), published.EARLY,
                    _transductive(_EARLY_O120)),
    'early-o520t': ('omniglot', _EARLY_TRANSDUCTIVE % (3, '5-shot 20-way'), published.EARLY,
                    _transductive(_EARLY_O520)),
    'early-m55t': ('miniimagenet', _EARLY_TRANSDUCTIVE % (4, '5-shot 5-way'), published.EARLY,
                   _transductive(_EARLY_M55)),
    'review-o15t': ('omniglot', _REVIEW % (1, 'Adam'), published.REVIEW,
                    _flags(1, 5, 10, 10, 5, 0.001, 1, 5, 100000, 5, 50, True)),
    'review-o15t-sgd': ('omniglot', _REVIEW % (1, 'SGD'), published.REVIEW,
                        dict(_flags(1, 5, 10, 10, 5, 0.003, 1, 5, 100000, 5, 50, True), sgd=True)),
    'review-m15t': ('miniimagenet', _REVIEW % (2, '1-shot column'), published.REVIEW,
                    _flags(1, 5, 15, 10, 8, 0.001, 1, 5, 100000, 5, 50, True)),
    'review-m55t': ('miniimagenet', _REVIEW % (2, '5-shot column'), published.REVIEW,
                    _flags(5, 5, 15, 10, 8, 0.001, 1, 5, 100000, 15, 50, True)),
    'review-m105t': ('miniimagenet', _REVIEW % (2, '10-shot column'), published.REVIEW,
                     _flags(10, 5, 15, 10, 8, 0.001, 1, 5, 100000, 15, 50, True)),
}

# Each preset trains into its own directory, named as the reference README names its runs.
PRESETS = {name: Preset(dataset, origin, reproduces,
                        dict(values, checkpoint='ckpt_' + name.replace('-', '_')))
           for name, (dataset, origin, reproduces, values) in _PRESETS.items()}


def listing():
    """Every preset with its script, where its values come from, the cell it reproduces (value
    and source) and its command line."""
    blocks = []
    for name, preset in PRESETS.items():
        cell = preset.cell()
        blocks.append('\n'.join([
            '%s (%s)' % (name, SCRIPTS[preset.dataset]),
            '  values from: %s' % preset.origin,
            '  reproduces:  %s: %s%% (%s)' % (preset.setting.describe(), cell.describe_value(),
                                               cell.describe_source()),
            '  command:     %s' % preset.command(),
        ]))
    return '\n\n'.join(blocks)
