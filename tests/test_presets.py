"""--preset: every published configuration as a named preset, explicit flags over preset values."""

import pytest

from supervised_reptile import args, presets, published, recipes
from supervised_reptile.errors import UserError

from conftest import REPO_DIR, run_script_here

COLUMNS = ('shots', 'classes', 'train-shots', 'inner-batch', 'inner-iters', 'learning-rate',
           'meta-step', 'meta-step-final', 'meta-batch', 'meta-iters', 'eval-batch', 'eval-iters',
           'transductive', 'checkpoint')

# The reference README's paper commands: script, then COLUMNS.
README_ROWS = [
    ('run_omniglot.py', 1, 5, 10, 10, 5, 0.001, 1, 0, 5, 100000, 5, 50, True, 'ckpt_o15t'),
    ('run_miniimagenet.py', 1, 5, 15, 10, 8, 0.001, 1, 0, 5, 100000, 5, 50, True, 'ckpt_m15t'),
    ('run_miniimagenet.py', 5, 5, 15, 10, 8, 0.001, 1, 0, 5, 100000, 15, 50, False, 'ckpt_m55'),
    ('run_miniimagenet.py', 1, 5, 15, 10, 8, 0.001, 1, 0, 5, 100000, 5, 50, False, 'ckpt_m15'),
    ('run_omniglot.py', 5, 5, 10, 10, 5, 0.001, 1, 0, 5, 100000, 5, 50, False, 'ckpt_o55'),
    ('run_omniglot.py', 1, 5, 10, 10, 5, 0.001, 1, 0, 5, 100000, 5, 50, False, 'ckpt_o15'),
    ('run_omniglot.py', 1, 20, 10, 20, 10, 0.0005, 1, 0, 5, 200000, 10, 50, False, 'ckpt_o120'),
    ('run_omniglot.py', 5, 20, 10, 20, 10, 0.0005, 1, 0, 5, 200000, 10, 50, False, 'ckpt_o520'),
]

# The early paper version's Tables 3-5 and the review's Tables 1-2, column by column (preset
# name, then COLUMNS without the checkpoint; the meta step is annealed to 0 everywhere).
PAPER_COLUMNS = [
    ('early-o15', 1, 5, 12, 5, 12, 4.4e-4, 1.0, 0, 3, 200000, 5, 86, False),
    ('early-o120', 1, 20, 9, 15, 12, 4.4e-4, 1.0, 0, 3, 200000, 10, 97, False),
    ('early-o55', 5, 5, 10, 10, 5, 1.5e-3, 0.7, 0, 5, 100000, 6, 100, False),
    ('early-o520', 5, 20, 12, 20, 12, 4.6e-4, 1.0, 0, 3, 200000, 10, 97, False),
    ('early-m15', 1, 5, 12, 3, 19, 1.2e-3, 0.235, 0, 2, 200000, 3, 55, False),
    ('early-m55', 5, 5, 15, 10, 8, 2.2e-4, 1.0, 0, 5, 200000, 15, 88, False),
    ('early-o15t', 1, 5, 15, 25, 3, 1e-3, 1, 0, 10, 100000, 5, 5, True),
    ('early-m15t', 1, 5, 15, 5, 15, 1e-3, 1, 0, 10, 100000, 5, 10, True),
    ('review-o15t', 1, 5, 10, 10, 5, 0.001, 1, 0, 5, 100000, 5, 50, True),
    ('review-o15t-sgd', 1, 5, 10, 10, 5, 0.003, 1, 0, 5, 100000, 5, 50, True),
    ('review-m15t', 1, 5, 15, 10, 8, 0.001, 1, 0, 5, 100000, 5, 50, True),
    ('review-m55t', 5, 5, 15, 10, 8, 0.001, 1, 0, 5, 100000, 15, 50, True),
    ('review-m105t', 10, 5, 15, 10, 8, 0.001, 1, 0, 5, 100000, 15, 50, True),
]


def parse(*argv, dataset='omniglot'):
    """Parse and resolve a run script's command line; return the effective flags."""
    args.FLAGS.unparse_flags()
    args.FLAGS(['run.py', *argv])
    args.resolve(dataset)
    return args.flag_values()


def assert_defaults_elsewhere(values, named):
    for name, value in values.items():
        if name not in named and name != 'preset':
            assert value == args.FLAGS[name].default, name


@pytest.mark.parametrize('row', README_ROWS, ids=[row[-1] for row in README_ROWS])
def test_each_readme_row_is_a_preset_with_its_values(row):
    script, expected = row[0], dict(zip(COLUMNS, row[1:]))
    names = [name for name, preset in presets.PRESETS.items()
             if preset.flags['checkpoint'] == expected['checkpoint']]
    assert len(names) == 1
    preset = presets.PRESETS[names[0]]
    assert presets.SCRIPTS[preset.dataset] == script
    assert preset.reproduces == published.FINAL
    values = parse('--preset', names[0], dataset=preset.dataset)
    assert {name: values[name] for name in COLUMNS} == expected
    assert_defaults_elsewhere(values, COLUMNS)


@pytest.mark.parametrize('column', PAPER_COLUMNS, ids=[column[0] for column in PAPER_COLUMNS])
def test_early_version_and_review_tables_are_presets(column):
    preset = presets.PRESETS[column[0]]
    values = parse('--preset', column[0], dataset=preset.dataset)
    assert {name: values[name] for name in COLUMNS[:-1]} == dict(zip(COLUMNS, column[1:]))
    assert values['sgd'] == column[0].endswith('-sgd')


@pytest.mark.parametrize('name, row', [('o55t', 'o55'), ('o120t', 'o120'), ('o520t', 'o520'),
                                       ('m55t', 'm55'), ('early-o55t', 'early-o55'),
                                       ('early-m55t', 'early-m55')])
def test_transductive_variants_are_their_row_plus_transductive(name, row):
    variant, plain = presets.PRESETS[name].flags, presets.PRESETS[row].flags
    assert variant['transductive'] and not plain['transductive']
    assert {**plain, 'transductive': True, 'checkpoint': None} == \
        {**variant, 'checkpoint': None}


def test_explicit_flags_override_the_preset():
    values = parse('--preset', 'o15t', '--meta-iters', '7', '--learning-rate', '0.01',
                   '--inner-batch', '5', '--notransductive', '--checkpoint', 'mine')
    # --inner-batch 5 is the flag's default, but given explicitly it still wins over the preset.
    assert (values['meta-iters'], values['learning-rate'], values['inner-batch']) == (7, 0.01, 5)
    assert not values['transductive'] and values['checkpoint'] == 'mine'
    assert (values['shots'], values['train-shots'], values['meta-batch']) == (1, 10, 5)
    training = recipes.training(args.flag_values())
    assert (training.meta_iters, training.inner_batch, training.train_shots) == (7, 5, 10)
    assert args.explicit_flags() == ['checkpoint', 'inner-batch', 'learning-rate', 'meta-iters',
                                     'preset', 'transductive']


def test_explicit_flags_win_whatever_their_position():
    assert parse('--shots', '3', '--preset', 'o15t')['shots'] == 3


def test_without_a_preset_the_defaults_stand():
    values = parse()
    assert values['preset'] is None
    assert_defaults_elsewhere(values, ())


def test_cross_flag_checks_see_the_preset_values():
    # 7 tail shots fit the preset's 10 training shots, not the default 5.
    assert parse('--preset', 'o55', '--foml', '--foml-tail', '7')['train-shots'] == 10
    with pytest.raises(UserError, match='lower --foml-tail'):
        parse('--foml', '--foml-tail', '7')


def test_every_preset_passes_the_flag_checks_and_reproduces_a_published_cell():
    for name, preset in presets.PRESETS.items():
        parse('--preset', name, dataset=preset.dataset)
        assert preset.cell() in published.CELLS, name


def test_every_published_cell_has_a_preset():
    reproduced = {preset.cell() for preset in presets.PRESETS.values()}
    assert set(published.CELLS) == reproduced


def test_unknown_preset_and_preset_of_the_other_script_are_user_errors():
    with pytest.raises(UserError, match='--preset list'):
        parse('--preset', 'o15x')
    with pytest.raises(UserError, match='run_miniimagenet.py'):
        parse('--preset', 'm15t', dataset='omniglot')


def test_preset_list_shows_every_preset_with_its_source_and_cell():
    result = run_script_here(REPO_DIR, '--preset', 'list')
    assert result.returncode == 0, result.stderr
    blocks = {block.split()[0]: block for block in result.stdout.strip().split('\n\n')}
    assert list(blocks) == list(presets.PRESETS)
    for name, preset in presets.PRESETS.items():
        cell = preset.cell()
        assert preset.origin in blocks[name]
        assert '%s%% (%s)' % (cell.describe_value(), cell.describe_source()) in blocks[name]
    assert 'reproduces:  Omniglot 1-shot 5-way, transductive: 97.68 ± 0.04% (final version, ' \
           'Table 2)' in blocks['o15t']


def test_unknown_preset_is_one_line_naming_the_listing():
    result = run_script_here(REPO_DIR, '--preset', 'o15x')
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == \
        "error: no preset named 'o15x'; --preset list lists them"
