"""
Serve the drawing demo on 127.0.0.1:

    python -m supervised_reptile.demo [--checkpoint DIR] [--port 8000] [--preprocess raw]

Without --checkpoint, the demo uses the Omniglot model that ships in the package; with it, the
finished training run in DIR. Drawings are framed as Omniglot frames its characters before they
are squashed to the model's input (--preprocess handwriting, the default for Omniglot's models;
see adapt.py), so that a character drawn small or off-centre is read as if drawn as Omniglot's
writers drew; --preprocess raw squashes the whole drawing, as the data loaders do.

Predictions are always made one query at a time, with the support drawings in the batch (as a
non-transductive evaluation makes them), whatever the run's --transductive: batch statistics
over one query alone would say nothing.
"""

# pylint: disable=wrong-import-position
from .. import cli  # TensorFlow loads through cli, quietly

import errno
import os

from .. import results
from ..adapt import Adapter
from ..errors import UserError
from . import SHIPPED_MODEL
from .server import DemoServer, Predictor


def main(argv):
    """The command (see the module's docstring)."""
    if len(argv) > 1:
        raise UserError('unexpected argument %s; the demo takes --checkpoint, --port and '
                        '--preprocess' % argv[1])
    given = [name for name in args.explicit_flags()
             if name not in ('checkpoint', 'port', 'preprocess')]
    if given:
        raise UserError('--%s is a setting of a training run; the demo takes --checkpoint, '
                        '--port and --preprocess' % given[0])
    directory = args.FLAGS['checkpoint'].value if args.FLAGS['checkpoint'].present \
        else SHIPPED_MODEL
    adapter = Adapter.from_checkpoint(directory, preprocess=args.FLAGS['preprocess'].value,
                                      transductive=False)
    if adapter.ways < 2:
        raise UserError('the model of %s tells %d class apart; the demo needs 2 or more'
                        % (directory, adapter.ways))
    predictor = Predictor(adapter)
    server = _server(args.FLAGS['port'].value, predictor, _info(adapter, directory))
    print('Compiling the adaptation to tasks of 2 to %d classes ...' % adapter.ways, flush=True)
    predictor.compile()
    print('The drawing demo is at http://127.0.0.1:%d/ (Ctrl-C stops it)' % server.server_port,
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print('Stopped.')
    finally:
        server.server_close()


def _server(port, predictor, info):
    try:
        return DemoServer(port, predictor, info)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UserError('port %d is in use; give another with --port (0 picks a free one)'
                            % port) from None
        raise UserError('cannot serve on 127.0.0.1:%d (%s); give another --port'
                        % (port, exc.strerror)) from None


def _info(adapter, directory):
    """What GET /info tells the page: the model's ways and where it comes from."""
    record = results.read(os.path.join(directory, results.RESULTS))
    test = record['accuracy'].get('test')
    return {'ways': adapter.ways,
            'model': '%s, %d-shot %d-way, %d meta-iterations%s; %s' % (
                record['dataset'], record['shots'], record['ways'], record['iterations'],
                ', test accuracy %.1f%%' % (100 * test['mean']) if test else '',
                'the model that ships with the package' if directory == SHIPPED_MODEL
                else directory)}


if __name__ == '__main__':
    from .. import args  # the command's flags, defined only when it runs
    args.define_demo_flags()
    cli.run(main)
