"""
How long the drawing demo takes to answer: `python -m supervised_reptile.demo` started as a
user starts it, and timed from the client's side, over HTTP, as the page sees it.

    python benchmarks/demo_latency.py [--requests 50] [--classes 5] [--checkpoint DIR]

Each request is a task of --classes random pen drawings (105x105 PNGs, one a class, as the page
sends them) and a query, all different; fine-tuning takes the model's evaluation settings (50
steps for the shipped model). Prints the start-up time, then seconds per answer (median, 90th
percentile, largest) one client at a time and two at once, and the cores the server may use
(run it under taskset to choose them).
"""

import argparse
import base64
import concurrent.futures
import io
import json
import os
import subprocess
import sys
import time
import urllib.request

import numpy as np
from PIL import Image, ImageDraw

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def drawing(rng):
    """A PNG data URL of a few random pen strokes on white, 105x105."""
    image = Image.new('L', (105, 105), 255)
    pen = ImageDraw.Draw(image)
    for _ in range(rng.integers(1, 4)):
        points = [tuple(rng.integers(15, 90, 2).tolist()) for _ in range(rng.integers(2, 5))]
        pen.line(points, fill=0, width=4)
    buffer = io.BytesIO()
    image.convert('1').save(buffer, 'PNG')
    return 'data:image/png;base64,' + base64.b64encode(buffer.getvalue()).decode('ascii')


def ask(url, body):
    """Seconds until the answer of one POST /predict."""
    started = time.perf_counter()
    request = urllib.request.Request(url + '/predict', data=body, method='POST',
                                     headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=120) as response:
        json.load(response)
    return time.perf_counter() - started


def describe(seconds):
    seconds = np.array(seconds)
    return 'median %.3f s, 90th percentile %.3f s, largest %.3f s (%d answers)' % (
        np.median(seconds), np.percentile(seconds, 90), seconds.max(), len(seconds))


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--requests', type=int, default=50)
    parser.add_argument('--classes', type=int, default=5)
    parser.add_argument('--checkpoint', help='a finished run (default: the shipped model)')
    options = parser.parse_args()
    rng = np.random.default_rng(0)
    bodies = [json.dumps({'support': [[drawing(rng)] for _ in range(options.classes)],
                          'query': drawing(rng)}).encode() for _ in range(options.requests)]
    command = [sys.executable, '-m', 'supervised_reptile.demo', '--port', '0']
    if options.checkpoint:
        command += ['--checkpoint', options.checkpoint]
    started = time.perf_counter()
    server = subprocess.Popen(command, cwd=REPO_DIR, stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONUNBUFFERED='1'))
    try:
        for line in server.stdout:
            if 'http://127.0.0.1:' in line:
                url = 'http://' + line.split('http://', 1)[1].split()[0].rstrip('/')
                break
        else:
            sys.exit('the demo did not start')
        print('cores the server may use: %d' % len(os.sched_getaffinity(0)))
        print('start-up (load, compile, listen): %.1f s' % (time.perf_counter() - started))
        print('%d classes, one client: %s' % (options.classes,
                                              describe([ask(url, b) for b in bodies])))
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            together = list(pool.map(lambda body: ask(url, body), bodies))
        print('%d classes, two clients at once: %s' % (options.classes, describe(together)))
    finally:
        server.terminate()
        server.wait()


if __name__ == '__main__':
    main()
