"""
The drawing demo's web server: the page's files, and POST /predict, which fine-tunes the model
on the drawings of a few-shot task and classifies a query drawing.

    POST /predict  {"support": [[png, ...], ...], "query": png}     PNG data URLs, a list a class
    -> 200         {"probabilities": [p, ...], "predicted": i}
    -> 400         {"error": "..."}                                  a request it cannot answer

A drawing becomes the model's input as the adapter's preprocessing says (adapt.py): framed as
Omniglot frames its characters and then squashed (handwriting.py; the default for Omniglot's
models), or only squashed as the data loaders squash an image (images.py; --preprocess raw), in
which case a drawing the page exports as Omniglot's images are drawn (105x105, black ink on
white paper, no grey) is read exactly as the loader reads an Omniglot image.
"""

import base64
import binascii
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import io
import json
import os
import threading
import time
import traceback

import numpy as np
from PIL import Image

from .. import images

PAGE_DIR = os.path.join(os.path.dirname(__file__), 'page')
PAGE_FILES = {'/': ('index.html', 'text/html; charset=utf-8'),
              '/demo.js': ('demo.js', 'text/javascript; charset=utf-8'),
              '/demo.css': ('demo.css', 'text/css; charset=utf-8')}
MAX_BODY_BYTES = 1 << 20  # a page's request is a few KB: 6 small PNGs
MAX_DRAWINGS_PER_CLASS = 10
MAX_DRAWING_SIDE = 1024
PNG_DATA_URL = 'data:image/png;base64,'
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
REQUEST_SHAPE = 'send {"support": [[png, ...], ...], "query": png}, PNG data URLs'


class BadRequest(Exception):
    """A request the demo refuses; the message is what the page shows."""


class Predictor:
    """An adapt.Adapter that the server's threads share, one request at a time (its evaluator's
    inner state is scratch space that every call overwrites). Each request fine-tunes afresh
    from the meta-learned weights and optimizer state, which it only reads."""

    def __init__(self, adapter):
        self.adapter = adapter
        self._lock = threading.Lock()

    @property
    def ways(self):
        return self.adapter.ways

    @property
    def image_shape(self):
        return self.adapter.image_shape

    def predict(self, support, query):
        """The answer to a task: support a list per class of images, query an image (PIL
        images, or arrays of the model's input shape)."""
        names = ['%03d' % index for index in range(len(support))]  # sorted in class order
        with self._lock:
            self.adapter.fit(dict(zip(names, support)))
            prediction, = self.adapter.predict([query])
        probabilities = [prediction.probabilities[name] for name in names]
        return {'probabilities': probabilities, 'predicted': int(np.argmax(probabilities))}

    def compile(self):
        """Trace the adaptation of every task the page can send (2 to ways classes of one
        drawing each), so that the first drawings are answered as fast as the rest."""
        rng = np.random.default_rng(0)
        def drawing():
            return rng.integers(0, 2, self.image_shape, dtype=np.uint8) * 255
        for ways in range(2, self.ways + 1):
            self.predict([[drawing()] for _ in range(ways)], drawing())


def parse_request(body, ways):
    """(support, query) of a /predict body as PIL images; a BadRequest says what is wrong."""
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest('the request is not JSON (%s); %s' % (exc, REQUEST_SHAPE)) from None
    if not isinstance(request, dict) or not {'support', 'query'} <= set(request):
        raise BadRequest('the request lacks "support" or "query"; ' + REQUEST_SHAPE)
    support = request['support']
    if not isinstance(support, list) or not all(isinstance(c, list) for c in support):
        raise BadRequest('"support" must be a list of lists of drawings, one list a class')
    if not 2 <= len(support) <= ways:
        raise BadRequest('%d %s given; this model tells 2 to %d classes apart'
                         % (len(support), 'class' if len(support) == 1 else 'classes', ways))
    for number, drawings in enumerate(support, 1):
        if not drawings:
            raise BadRequest('class %d has no drawing; draw one' % number)
        if len(drawings) > MAX_DRAWINGS_PER_CLASS:
            raise BadRequest('class %d has %d drawings; give at most %d'
                             % (number, len(drawings), MAX_DRAWINGS_PER_CLASS))
    drawings = [[decode_drawing(url, 'the drawing of class %d' % number
                              if len(drawings) == 1 else 'drawing %d of class %d' % (i, number))
               for i, url in enumerate(drawings, 1)]
              for number, drawings in enumerate(support, 1)]
    return drawings, decode_drawing(request['query'], 'the query')


def decode_drawing(data_url, name):
    """A PNG data URL as a PIL image; a blank drawing, or one that is not a PNG, is a
    BadRequest naming it."""
    if not isinstance(data_url, str) or not data_url.startswith(PNG_DATA_URL):
        raise BadRequest('%s is not a PNG data URL (%s...)' % (name, PNG_DATA_URL))
    try:
        data = base64.b64decode(data_url[len(PNG_DATA_URL):], validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest('%s is not valid base64' % name) from None
    if not data.startswith(PNG_SIGNATURE):
        raise BadRequest('%s is not a PNG image' % name)
    try:
        with Image.open(io.BytesIO(data)) as image:
            if max(image.size) > MAX_DRAWING_SIDE:
                raise BadRequest('%s is %dx%d pixels; at most %d a side' % (
                    name, *image.size, MAX_DRAWING_SIDE))
            image.load()
            darkest, lightest = images.on_white(image).convert('L').getextrema()
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadRequest('%s cannot be decoded as a PNG (%s)' % (name, exc)) from None
    if lightest == darkest:
        raise BadRequest('%s is blank; draw in it' % name)
    return image


class DemoServer(ThreadingHTTPServer):
    """The HTTP server of the demo, on 127.0.0.1 only; info is what GET /info answers."""

    daemon_threads = True

    def __init__(self, port, predictor, info):
        super().__init__(('127.0.0.1', port), Handler)
        self.predictor = predictor
        self.info = info


class Handler(BaseHTTPRequestHandler):
    """GET: the page and /info; POST /predict."""

    server_version = 'supervised-reptile-demo'

    def do_GET(self):  # pylint: disable=invalid-name
        path = self.path.split('?')[0]
        if path == '/info':
            self._send_json(HTTPStatus.OK, self.server.info)
        elif path in PAGE_FILES:
            name, content_type = PAGE_FILES[path]
            with open(os.path.join(PAGE_DIR, name), 'rb') as file:
                self._send(HTTPStatus.OK, file.read(), content_type)
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {'error': 'no page %s' % path})

    def do_POST(self):  # pylint: disable=invalid-name
        if self.path.split('?')[0] != '/predict':
            self._send_json(HTTPStatus.NOT_FOUND, {'error': 'POST goes to /predict'})
            return
        started = time.perf_counter()
        try:
            support, query = parse_request(self._body(), self.server.predictor.ways)
            answer = self.server.predictor.predict(support, query)
        except BadRequest as exc:
            self._send_json(HTTPStatus.BAD_REQUEST, {'error': str(exc)})
            self.log_message('refused a request: %s', exc)
            return
        except Exception:  # pylint: disable=broad-except
            # A fault of the server's, not of the request: said, and the server goes on.
            traceback.print_exc()
            self._send_json(HTTPStatus.INTERNAL_SERVER_ERROR,
                            {'error': 'the server failed on this request; see its output'})
            return
        self._send_json(HTTPStatus.OK, answer)
        self.log_message('predicted class %d of %d in %.2f s', answer['predicted'] + 1,
                         len(support), time.perf_counter() - started)

    def _body(self):
        length = self.headers.get('Content-Length', '')
        if not length.isdigit():
            self.close_connection = True
            raise BadRequest('the request has no Content-Length')
        length = int(length)
        if length > MAX_BODY_BYTES:
            # Read on (up to a bound) so that the client, still sending, gets the answer.
            self._discard(min(length, 16 * MAX_BODY_BYTES))
            self.close_connection = True
            raise BadRequest('the request is %d bytes; at most %d' % (length, MAX_BODY_BYTES))
        return self.rfile.read(length)

    def _discard(self, length):
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                return
            length -= len(chunk)

    def _send_json(self, status, record):
        self._send(status, json.dumps(record).encode('utf-8'), 'application/json')

    def _send(self, status, body, content_type):
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Cache-Control', 'no-store')
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code='-', size='-'):
        """Nothing: do_POST says what became of each prediction."""

    def log_message(self, format, *arguments):  # pylint: disable=redefined-builtin
        print(format % arguments, flush=True)
