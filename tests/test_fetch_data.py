"""fetch_data.sh: a verified Omniglot from a mirror, and nothing left behind by a failure."""

import os
import signal
import subprocess
import time
import zipfile

import pytest

from conftest import OMNIGLOT_MIRROR, REPO_DIR

pytestmark = pytest.mark.slow  # downloads from the mirror

SCRIPT = str(REPO_DIR / 'fetch_data.sh')


def fetch(workdir, mirror, extra_env=None, **popen):
    env = dict(os.environ, OMNIGLOT_URL='file://%s' % mirror, RETRY_DELAY='0', **(extra_env or {}))
    return subprocess.Popen(['bash', SCRIPT], cwd=workdir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def finish(process):
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err


def leftovers(workdir):
    data = workdir / 'data'
    return sorted(p.name for p in data.iterdir()) if data.exists() else []


def bad_mirror(tmp_path, background_bytes):
    mirror = tmp_path / 'mirror'
    mirror.mkdir()
    (mirror / 'images_background.zip').write_bytes(background_bytes)
    return mirror


def small_zip_bytes(tmp_path):
    path = tmp_path / 'small.zip'
    with zipfile.ZipFile(path, 'w') as archive:
        for i in range(50):
            archive.writestr('images_background/A/character01/%02d.png' % i, os.urandom(2000))
    return path.read_bytes()


@pytest.mark.parametrize('kind', ['html', 'truncated', 'missing'])
def test_a_bad_download_fails_loudly_and_leaves_nothing(tmp_path, kind):
    contents = {'html': b'<!DOCTYPE html><html><body>Rate limit exceeded</body></html>',
                'truncated': small_zip_bytes(tmp_path)[:3000],
                'missing': None}[kind]
    mirror = bad_mirror(tmp_path, contents) if contents else tmp_path / 'no-such-mirror'
    workdir = tmp_path / 'work'
    workdir.mkdir()
    code, _, err = finish(fetch(workdir, mirror))
    assert code != 0
    assert 'could not download a valid images_background.zip' in err
    assert leftovers(workdir) == []


def test_an_incomplete_existing_tree_is_reported_not_touched(tmp_path):
    workdir = tmp_path / 'work'
    (workdir / 'data' / 'omniglot' / 'Alphabet').mkdir(parents=True)
    code, _, err = finish(fetch(workdir, tmp_path))
    assert code != 0 and 'is incomplete; remove it' in err
    assert (workdir / 'data' / 'omniglot' / 'Alphabet').is_dir()


@pytest.mark.skipif(not OMNIGLOT_MIRROR.is_dir(), reason='no Omniglot mirror in ../shared')
def test_mirror_gives_the_verified_tree_and_a_killed_run_leaves_nothing(tmp_path):
    workdir = tmp_path / 'work'
    workdir.mkdir()
    process = fetch(workdir, OMNIGLOT_MIRROR, start_new_session=True)
    time.sleep(1.0)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (workdir / 'data' / 'omniglot').exists()

    code, out, err = finish(fetch(workdir, OMNIGLOT_MIRROR))
    assert code == 0, err
    assert 'installed in data/omniglot' in out
    assert 'Mini-ImageNet: not built' in out and 'MINIIMAGENET_SOURCE=' in out
    assert leftovers(workdir) == ['omniglot']
    root = workdir / 'data' / 'omniglot'
    characters = [c for a in root.iterdir() for c in a.iterdir()]
    assert len(list(root.iterdir())) == 50 and len(characters) == 1623
    assert sum(len(list(c.glob('*.png'))) for c in characters) == 32460

    code, out, _ = finish(fetch(workdir, OMNIGLOT_MIRROR))
    assert code == 0 and 'present and complete' in out

    not_mini = tmp_path / 'not-mini-imagenet'
    (not_mini / 'some' / 'folder').mkdir(parents=True)
    code, _, err = finish(fetch(workdir, OMNIGLOT_MIRROR, extra_env={'MINIIMAGENET_SOURCE':
                                                                     str(not_mini)}))
    assert code != 0 and 'is neither a split tree' in err
    assert leftovers(workdir) == ['omniglot']
