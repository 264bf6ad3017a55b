"""The record of a run: config.json before training, results.json after the final evaluation,
and their --pretrained counterparts beside them."""

import json
import math
import os

import pytest
import tensorflow as tf

import supervised_reptile
from supervised_reptile import args, results

from conftest import copy_omniglot_tree, run_script_here

pytestmark = pytest.mark.slow  # a run script's short run

# The preset's training shots (10) do not fit the two drawings per character of the synthetic
# data, and its budget is far too long for a test: both are overridden.
SHORT_RUN = ('--preset', 'o15t', '--meta-iters', '3', '--train-shots', '2', '--inner-iters', '2',
             '--eval-iters', '3', '--eval-interval', '2', '--eval-samples', '4',
             '--checkpoint', 'ckpt')


@pytest.fixture(scope='module')
def short_run(tmp_path_factory, omniglot_tree):
    """The checkpoint directory of a three-step run of preset o15t on synthetic Omniglot (enough
    characters for the 1200-character training split, two drawings each)."""
    root = tmp_path_factory.mktemp('work')
    copy_omniglot_tree(omniglot_tree, root)
    result = run_script_here(root, *SHORT_RUN)
    assert result.returncode == 0, result.stderr
    (root / 'ckpt' / 'stdout.txt').write_text(result.stdout)
    return root / 'ckpt'


def read(path):
    return json.loads(path.read_text())


def test_config_records_every_flag_the_preset_versions_and_devices(short_run):
    config = read(short_run / 'config.json')
    assert config['dataset'] == 'omniglot' and config['preset'] == 'o15t'
    assert set(config['flags']) == set(args.flag_values())
    assert config['flags']['meta-iters'] == 3 and config['flags']['inner-batch'] == 10
    assert config['explicit_flags'] == ['checkpoint', 'eval-interval', 'eval-iters',
                                        'eval-samples', 'inner-iters', 'meta-iters', 'preset',
                                        'train-shots']
    assert config['seed'] == 0
    assert config['versions']['supervised_reptile'] == supervised_reptile.__version__
    assert config['versions']['tensorflow'] == tf.__version__
    assert config['devices'] and all(device.startswith('/device:') for device in config['devices'])
    assert config['command'][1:] == list(SHORT_RUN) and config['started']


def test_results_file_has_every_field(short_run):
    record = read(short_run / 'results.json')
    assert {key: record[key] for key in ('dataset', 'ways', 'shots', 'transductive', 'algorithm',
                                         'inner_optimizer', 'preset', 'pretrained', 'iterations',
                                         'checkpoint', 'config')} == {
        'dataset': 'omniglot', 'ways': 5, 'shots': 1, 'transductive': True,
        'algorithm': 'reptile', 'inner_optimizer': 'adam', 'preset': 'o15t',
        'pretrained': False, 'iterations': 3, 'checkpoint': 'model.ckpt-2',
        'config': 'config.json'}
    assert set(record['accuracy']) == {'train', 'test'}
    printed = (short_run / 'stdout.txt').read_text()
    for split, accuracy in record['accuracy'].items():
        # What the run printed, and of 4 tasks of 5 queries: a multiple of 1/20.
        assert '%s accuracy: %.6f +/- %.6f (95%% CI, 4 tasks)' % (
            split.capitalize(), accuracy['mean'], accuracy['ci95']) in printed
        assert accuracy['num_tasks'] == 4
        assert 20 * accuracy['mean'] == pytest.approx(round(20 * accuracy['mean']), abs=1e-9)
    times = record['wall_time_seconds']
    assert 0 < times['training'] < times['total'] and 0 < times['evaluation'] < times['total']
    assert record['flags'] == read(short_run / 'config.json')['flags']


def test_evaluating_the_checkpoint_leaves_the_training_record_alone(short_run):
    before = {name: (short_run / name).read_bytes() for name in ('config.json', 'results.json')}
    result = run_script_here(short_run.parent, '--preset', 'o15t', '--pretrained',
                             '--eval-samples', '3', '--checkpoint', 'ckpt')
    assert result.returncode == 0, result.stderr
    assert 'Restoring from checkpoint' in result.stdout and 'Test accuracy: ' in result.stdout
    assert {name: (short_run / name).read_bytes() for name in before} == before
    assert read(short_run / 'eval_config.json')['flags']['pretrained']
    record = read(short_run / 'eval_results.json')
    assert record['pretrained'] and record['config'] == 'eval_config.json'
    assert record['iterations'] == 3 and record['accuracy']['test']['num_tasks'] == 3
    assert record['wall_time_seconds']['training'] is None
    # The preset says 100000 meta-iterations and 10 training shots; the checkpoint had 3 and 2.
    assert (record['flags']['meta-iters'], record['flags']['train-shots']) == (3, 2)
    assert record['flags']['eval-samples'] == 3


def test_write_replaces_whole_files_only(tmp_path):
    results.write(tmp_path / 'new', 'results.json', {'a': 1})
    assert read(tmp_path / 'new' / 'results.json') == {'a': 1}
    with pytest.raises(ValueError):
        results.write(tmp_path / 'new', 'results.json', {'a': math.nan})
    assert read(tmp_path / 'new' / 'results.json') == {'a': 1}
    assert os.listdir(tmp_path / 'new') == ['results.json']
