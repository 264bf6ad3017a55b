"""The drawing demo's server: the request format and its refusals, the HTTP API with the model
that ships in the package, concurrent requests, the command, and the package's files.
(The page itself is tested in a browser: test_demo_page.py.)"""

import base64
import concurrent.futures
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import zipfile

import numpy as np
from PIL import Image
import pytest

from supervised_reptile import images, omniglot
from supervised_reptile.adapt import Adapter
from supervised_reptile.demo import SHIPPED_MODEL
from supervised_reptile.demo.server import (MAX_BODY_BYTES, BadRequest, DemoServer, Predictor,
                                            decode_drawing, parse_request)

from conftest import OMNIGLOT_MIRROR, REPO_DIR, write_omniglot_tree

def png_url(pixels):
    """A PNG data URL of a boolean (ink) array, drawn black on white as the page exports it."""
    image = Image.fromarray(np.where(pixels, 0, 255).astype(np.uint8), 'L')
    buffer = io.BytesIO()
    image.save(buffer, 'PNG')
    return 'data:image/png;base64,' + base64.b64encode(buffer.getvalue()).decode('ascii')


def shape_drawing(kind, shift=0):
    """A 105x105 drawing of a bar, a ring or a cross (ink True)."""
    y, x = np.mgrid[:105, :105] - 52 - shift
    radius = np.hypot(x, y)
    return {'bar': (abs(x) < 3) & (abs(y) < 38),
            'ring': abs(radius - 30) < 2.5,
            'cross': ((abs(x - y) < 3) | (abs(x + y) < 3)) & (abs(x) < 32)}[kind]


def task_request(kinds=('bar', 'ring', 'cross'), query='ring', shift=3):
    return {'support': [[png_url(shape_drawing(kind))] for kind in kinds],
            'query': png_url(shape_drawing(query, shift))}


def read_drawing(url, name):
    """A drawing as the model's input array when it is read raw, as the loaders read images."""
    return images.to_array(decode_drawing(url, name), 28, 1)


def refused(request, match):
    body = request if isinstance(request, bytes) else json.dumps(request).encode()
    with pytest.raises(BadRequest, match=match):
        parse_request(body, 5)


# The request and its refusals.

def test_a_drawing_is_read_as_the_omniglot_loader_reads_the_same_png(tmp_path):
    root = write_omniglot_tree(tmp_path / 'omniglot', alphabets=1, characters=1, drawings=3)
    loaded = omniglot.read_dataset(str(root))
    for index, path in enumerate(sorted((root / 'Alphabet0' / 'character01').iterdir())):
        url = 'data:image/png;base64,' + base64.b64encode(path.read_bytes()).decode('ascii')
        np.testing.assert_array_equal(read_drawing(url, 'a drawing'),
                                      loaded.class_images(0)[index])


def test_a_real_omniglot_png_is_read_as_the_loader_reads_it(tmp_path):
    if not OMNIGLOT_MIRROR.is_dir():
        pytest.skip('the real Omniglot (../shared/data/omniglot/mirror) is not here')
    character = tmp_path / 'omniglot' / 'Angelic' / 'character02'
    character.mkdir(parents=True)
    with zipfile.ZipFile(OMNIGLOT_MIRROR / 'images_evaluation.zip') as archive:
        prefix = 'images_evaluation/Angelic/character02/'
        for name in sorted(archive.namelist()):
            if name.startswith(prefix) and name.endswith('.png'):
                (character / name[len(prefix):]).write_bytes(archive.read(name))
    loaded = omniglot.read_dataset(str(tmp_path / 'omniglot'))
    for index, path in enumerate(sorted(character.iterdir())):
        url = 'data:image/png;base64,' + base64.b64encode(path.read_bytes()).decode('ascii')
        np.testing.assert_array_equal(read_drawing(url, 'a drawing'),
                                      loaded.class_images(0)[index])


def test_a_request_becomes_one_image_per_drawing_in_class_order():
    support, query = parse_request(json.dumps(task_request()).encode(), 5)
    assert [len(drawings) for drawings in support] == [1, 1, 1]
    assert all(image.size == (105, 105) for image in [query] + sum(support, []))
    for drawings, kind in zip(support, ('bar', 'ring', 'cross')):
        assert np.array_equal(np.asarray(drawings[0]) == 0, shape_drawing(kind))
    assert np.array_equal(np.asarray(query) == 0, shape_drawing('ring', 3))


def test_a_body_that_is_not_json_is_refused():
    refused(b'support=1', 'not JSON')
    refused(b'\xff\xfe', 'not JSON')


def test_a_body_without_support_or_query_is_refused():
    refused({'support': []}, 'lacks "support" or "query"')
    refused([1, 2], 'lacks "support" or "query"')


def test_support_that_is_not_a_list_of_lists_is_refused():
    refused({'support': 'abc', 'query': 'x'}, 'list of lists')
    refused({'support': ['abc', 'def'], 'query': 'x'}, 'list of lists')


def test_one_class_is_refused():
    refused(task_request(kinds=('bar',)), '1 class given; this model tells 2 to 5 classes apart')


def test_more_classes_than_the_model_has_are_refused():
    request = task_request()
    request['support'] *= 2
    refused(request, '6 classes given; this model tells 2 to 5 classes apart')


def test_a_class_without_drawings_is_refused_naming_it():
    request = task_request()
    request['support'][1] = []
    refused(request, 'class 2 has no drawing')


def test_too_many_drawings_of_a_class_are_refused():
    request = task_request()
    request['support'][0] *= 11
    refused(request, 'class 1 has 11 drawings; give at most 10')


def test_a_drawing_that_is_not_a_png_data_url_is_refused_naming_it():
    request = task_request()
    request['support'][2] = ['https://example.com/a.png']
    refused(request, 'the drawing of class 3 is not a PNG data URL')
    request['support'][2] = [7]
    refused(request, 'the drawing of class 3 is not a PNG data URL')


def test_bad_base64_is_refused():
    request = task_request()
    request['query'] = 'data:image/png;base64,@@@@'
    refused(request, 'the query is not valid base64')


def test_data_that_is_not_a_png_is_refused():
    buffer = io.BytesIO()
    Image.new('L', (105, 105), 255).save(buffer, 'JPEG')
    request = task_request()
    request['query'] = 'data:image/png;base64,' + base64.b64encode(buffer.getvalue()).decode()
    refused(request, 'the query is not a PNG image')


def test_a_damaged_png_is_refused():
    data = base64.b64decode(png_url(shape_drawing('ring')).split(',', 1)[1])
    request = task_request()
    request['query'] = 'data:image/png;base64,' + base64.b64encode(data[:60]).decode()
    refused(request, 'the query cannot be decoded as a PNG')


def test_a_blank_drawing_is_refused_naming_it():
    request = task_request()
    request['support'][1] = [png_url(np.zeros((105, 105), bool))]
    refused(request, 'the drawing of class 2 is blank')
    request = task_request()
    request['support'][1].append(png_url(np.zeros((105, 105), bool)))
    refused(request, 'drawing 2 of class 2 is blank')


def test_a_huge_image_is_refused_before_it_is_decoded():
    request = task_request()
    request['query'] = png_url(np.ones((2000, 10), bool))
    refused(request, 'the query is 10x2000 pixels; at most 1024 a side')


# The HTTP API, with the model that ships in the package.

@pytest.fixture(scope='module')
def predictor():
    return Predictor(Adapter.from_checkpoint(SHIPPED_MODEL, transductive=False))


@pytest.fixture(scope='module')
def server(predictor):
    server = DemoServer(0, predictor, {'ways': predictor.ways, 'model': 'test'})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield 'http://127.0.0.1:%d' % server.server_port
    server.shutdown()
    server.server_close()


def post(url, body, headers=None):
    """(status, decoded JSON answer) of a POST."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method='POST',
                                     headers=headers or {'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.mark.slow
def test_a_prediction_gives_every_class_a_probability_and_names_the_likeliest(server):
    status, answer = post(server + '/predict', task_request())
    assert status == 200
    assert len(answer['probabilities']) == 3
    assert sum(answer['probabilities']) == pytest.approx(1, abs=1e-5)
    assert answer['predicted'] == int(np.argmax(answer['probabilities']))


@pytest.mark.slow
def test_the_answer_is_the_adaptation_of_the_evaluation_path(server, predictor):
    request = task_request(kinds=('cross', 'bar'), query='bar')
    support, query = parse_request(json.dumps(request).encode(), 5)
    expected = Adapter.from_checkpoint(SHIPPED_MODEL, transductive=False).fit(
        {'a': support[0], 'b': support[1]}).predict([query])[0]
    status, answer = post(server + '/predict', request)
    assert status == 200
    assert answer['probabilities'] == [expected.probabilities['a'], expected.probabilities['b']]


@pytest.mark.slow
def test_concurrent_requests_get_the_answers_they_get_alone_and_change_nothing(server,
                                                                               predictor):
    model = predictor.adapter.learner.model
    optimizer = predictor.adapter.learner.algorithm.optimizer
    before = [v.numpy() for v in model.variables + list(optimizer.variables)]
    requests = [task_request(query=query, shift=shift)
                for query in ('bar', 'ring', 'cross') for shift in (-2, 4)]
    alone = [post(server + '/predict', request) for request in requests]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        together = list(pool.map(lambda r: post(server + '/predict', r), requests * 3))
    assert together == alone * 3
    after = [v.numpy() for v in model.variables + list(optimizer.variables)]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


@pytest.mark.slow
def test_a_bad_request_gets_400_with_the_message_and_the_server_keeps_serving(server):
    status, answer = post(server + '/predict', b'{"support": ')
    assert status == 400 and 'not JSON' in answer['error']
    status, answer = post(server + '/predict', task_request(kinds=('ring',)))
    assert status == 400 and '1 class given' in answer['error']
    assert post(server + '/predict', task_request())[0] == 200


@pytest.mark.slow
def test_a_body_over_the_size_limit_gets_400_and_the_server_keeps_serving(server):
    status, answer = post(server + '/predict', b' ' * (MAX_BODY_BYTES + 1))
    assert status == 400
    assert answer['error'] == 'the request is %d bytes; at most %d' % (MAX_BODY_BYTES + 1,
                                                                       MAX_BODY_BYTES)
    assert post(server + '/predict', task_request())[0] == 200


@pytest.mark.slow
def test_the_page_and_the_models_description_are_served(server):
    with urllib.request.urlopen(server + '/') as response:
        page = response.read().decode()
    assert '<script src="demo.js"></script>' in page
    for name in ('demo.js', 'demo.css'):
        with urllib.request.urlopen('%s/%s' % (server, name)) as response:
            assert response.status == 200 and response.read()
    with urllib.request.urlopen(server + '/info') as response:
        assert json.load(response) == {'ways': 5, 'model': 'test'}


@pytest.mark.slow
def test_an_unknown_path_gets_404(server):
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(server + '/model.ckpt')
    assert error.value.code == 404
    assert post(server + '/adapt', task_request())[0] == 404


# The command.

def run_demo(*flags):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    return subprocess.run([sys.executable, '-m', 'supervised_reptile.demo', *flags],
                          cwd=REPO_DIR, env=env, capture_output=True, text=True, timeout=300,
                          check=False)


@pytest.mark.slow
def test_a_port_in_use_is_refused_in_one_line(server):
    port = server.rsplit(':', 1)[1]
    process = run_demo('--port', port)
    assert process.returncode == 2
    assert process.stderr == ('error: port %s is in use; give another with --port (0 picks a '
                              'free one)\n' % port)


@pytest.mark.slow
def test_a_setting_of_a_training_run_is_refused(tmp_path):
    process = run_demo('--meta-iters', '5')
    assert process.returncode == 2
    assert process.stderr == ('error: --meta-iters is a setting of a training run; the demo '
                              'takes --checkpoint, --port and --preprocess\n')


@pytest.mark.slow
def test_a_checkpoint_directory_without_a_run_is_refused(tmp_path):
    process = run_demo('--checkpoint', str(tmp_path / 'nothing'))
    assert process.returncode == 2
    assert process.stderr.startswith('error: no checkpoint in ') and process.stderr.count('\n') == 1


# The model that ships in the package.

@pytest.mark.slow
def test_the_shipped_model_tells_omniglots_test_characters_apart(predictor, real_omniglot_dir):
    record = json.loads((pathlib.Path(SHIPPED_MODEL) / 'results.json').read_text())
    assert record['dataset'] == 'omniglot' and record['ways'] == 5
    _, test = omniglot.load(str(real_omniglot_dir), record['flags']['seed'])
    rng = np.random.default_rng(0)
    right = 0
    for _ in range(20):
        drawings = [test.class_images(c)[rng.choice(20, 2, replace=False)]
                    for c in rng.choice(len(test), 5, replace=False)]
        label = int(rng.integers(5))
        answer = predictor.predict([[first] for first, _ in drawings], drawings[label][1])
        right += answer['predicted'] == label
    assert right >= 16, right  # 20 tasks of 5 ways; the model's test accuracy is above 0.9


@pytest.mark.slow
def test_the_package_carries_the_model_and_the_page(tmp_path):
    source = tmp_path / 'source'  # a copy, so that the build leaves nothing in the repository
    shutil.copytree(REPO_DIR / 'supervised_reptile', source / 'supervised_reptile',
                    ignore=shutil.ignore_patterns('__pycache__'))
    for name in ('setup.py', 'README.md'):
        shutil.copyfile(REPO_DIR / name, source / name)
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
                    '-q', '-w', str(tmp_path), str(source)], check=True, capture_output=True)
    wheel, = tmp_path.glob('*.whl')
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    shipped = pathlib.Path(SHIPPED_MODEL)
    for path in list(shipped.iterdir()) + list((shipped.parent / 'page').iterdir()):
        assert 'supervised_reptile/demo/%s/%s' % (path.parent.name, path.name) in names
