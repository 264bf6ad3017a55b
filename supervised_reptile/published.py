"""
The published accuracies a run of this port can be compared with, each with its source.

This one table serves both the compare command and the preset listing. It holds Reptile's own
results only: the MAML rows of the papers' tables are quoted from another paper and another
code base. The review's pre-training rows (its Table 5) are left out too: this port can
pre-train (--pretrain-iters, docs/pretraining.md), but the review does not give its
pre-training's step size, batch size or length, so no run of this port is in their setting.

Accuracies are percentages of test-class tasks. A published "+/-" is kept as the half-width of an
interval: the Reptile paper's is the standard deviation over three seeds; the review gives none.
The final version's numbers are those of arXiv:1803.02999 v3, Tables 1 and 2, checked against
several independent public copies of those tables (among them the README of a reproduction
fork of the reference, which re-ran every cell with the reference code and matched each within
about 0.5 points).
"""

from dataclasses import dataclass
from typing import Optional

DATASET_NAMES = {'omniglot': 'Omniglot', 'miniimagenet': 'Mini-ImageNet', 'folder': 'image folder'}

FINAL = 'final'
EARLY = 'early'
REVIEW = 'review'

SOURCES = {
    FINAL: 'Reptile paper, final version (Nichol, Achiam & Schulman, "On First-Order '
           'Meta-Learning Algorithms", arXiv:1803.02999 v3)',
    EARLY: 'Reptile paper, early version (Nichol & Schulman, "Reptile: a Scalable Metalearning '
           'Algorithm", the first arXiv:1803.02999)',
    REVIEW: 'Black, McLeay & King, "First-Order Approximations for Efficient Meta-Learning: '
            'A Review of Reptile" (2022)',
}
SHORT_SOURCES = {FINAL: 'final version', EARLY: 'early version', REVIEW: '2022 review'}


@dataclass(frozen=True)
class Setting:
    """What a published number is a number of; two accuracies are comparable when these agree."""
    dataset: str
    ways: int
    shots: int
    transductive: bool
    algorithm: str = 'reptile'
    inner_optimizer: str = 'adam'

    @classmethod
    def from_flags(cls, dataset, flags):
        """The setting of a run (or preset) with these flag values; unset booleans are off."""
        return cls(dataset, flags['classes'], flags['shots'], bool(flags.get('transductive')),
                   'fomaml' if flags.get('foml') else 'reptile',
                   'sgd' if flags.get('sgd') else 'adam')

    def describe(self):
        words = ['%s %d-shot %d-way' % (DATASET_NAMES[self.dataset], self.shots, self.ways)]
        words.append('transductive' if self.transductive else 'non-transductive')
        if self.algorithm != 'reptile':
            words.append(self.algorithm)
        if self.inner_optimizer != 'adam':
            words.append('%s inner loop' % self.inner_optimizer.upper())
        return ', '.join(words)


@dataclass(frozen=True)
class Cell:
    """One published accuracy: where it is printed, what setting it measures, and its value."""
    source: str
    table: str
    setting: Setting
    accuracy: float
    half_width: Optional[float] = None
    decimals: int = 2  # as printed by the source

    def describe_source(self):
        return '%s, %s' % (SHORT_SOURCES[self.source], self.table)

    def describe_value(self):
        if self.half_width is None:
            return '%.*f' % (self.decimals, self.accuracy)
        return '%.*f ± %.*f' % (self.decimals, self.accuracy, self.decimals, self.half_width)


def _cells(source, table, dataset, transductive, values, decimals=2, **setting):
    """Cells of one table row: values maps (shots, ways) to (accuracy, half-width or None)."""
    return [Cell(source, table, Setting(dataset, ways, shots, transductive, **setting), *value,
                 decimals=decimals)
            for (shots, ways), value in values.items()]


CELLS = tuple(
    # Reptile paper, final version: Table 1 is Mini-ImageNet, Table 2 Omniglot.
    _cells(FINAL, 'Table 2', 'omniglot', False, {
        (1, 5): (95.39, 0.09), (5, 5): (98.90, 0.10), (1, 20): (88.14, 0.15),
        (5, 20): (96.65, 0.33)})
    + _cells(FINAL, 'Table 2', 'omniglot', True, {
        (1, 5): (97.68, 0.04), (5, 5): (99.48, 0.06), (1, 20): (89.43, 0.14),
        (5, 20): (97.12, 0.32)})
    + _cells(FINAL, 'Table 1', 'miniimagenet', False, {
        (1, 5): (47.07, 0.26), (5, 5): (62.74, 0.37)})
    + _cells(FINAL, 'Table 1', 'miniimagenet', True, {
        (1, 5): (49.97, 0.32), (5, 5): (65.99, 0.58)})
    # Early version, the paper's first arXiv version: the same two tables, other
    # hyper-parameters.
    + _cells(EARLY, 'Table 2', 'omniglot', False, {
        (1, 5): (95.32, 0.05), (5, 5): (98.87, 0.02), (1, 20): (88.27, 0.30),
        (5, 20): (97.07, 0.12)})
    + _cells(EARLY, 'Table 2', 'omniglot', True, {
        (1, 5): (97.97, 0.08), (5, 5): (99.47, 0.04), (1, 20): (89.36, 0.20),
        (5, 20): (97.47, 0.10)})
    + _cells(EARLY, 'Table 1', 'miniimagenet', False, {
        (1, 5): (45.79, 0.44), (5, 5): (61.98, 0.69)})
    + _cells(EARLY, 'Table 1', 'miniimagenet', True, {
        (1, 5): (48.21, 0.69), (5, 5): (66.00, 0.62)})
    # The review ran everything transductively, one seed, no interval. Its Table 5 repeats the
    # plain Reptile numbers of Tables 3 and 4 beside its pre-training rows.
    + _cells(REVIEW, 'Table 3', 'omniglot', True, {(1, 5): (97.7, None)}, decimals=1)
    + _cells(REVIEW, 'Table 3', 'omniglot', True, {(1, 5): (97.4, None)}, decimals=1,
             inner_optimizer='sgd')
    + _cells(REVIEW, 'Table 4', 'miniimagenet', True, {
        (1, 5): (51.6, None), (5, 5): (67.4, None), (10, 5): (72.6, None)}, decimals=1)
)


def cells_for(setting):
    """The published cells measuring this setting, in the order of CELLS."""
    return [cell for cell in CELLS if cell.setting == setting]


def cell(source, setting):
    """The cell of this source for this setting, or None."""
    return next((c for c in cells_for(setting) if c.source == source), None)
