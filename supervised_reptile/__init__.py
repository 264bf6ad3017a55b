"""
Reptile and first-order MAML for few-shot learning, on TensorFlow 2 / Keras 3.

    import supervised_reptile as sr
    learner = sr.Reptile(model, loss='sparse_categorical_crossentropy', inner_optimizer=sr.Adam(1e-3))
    learner.fit(sr.tasks.from_arrays(x, y, ways=5, shots=1), meta_iterations=1000)

The names below load on first use: importing the package defines no command-line flag, changes
no TensorFlow setting and does not load TensorFlow, so that the run scripts can choose the CPU
kernels before TensorFlow starts (cpu_kernels.py). See docs/library.md.
"""

import importlib

__version__ = '0.1.0'

# Public name -> the module that defines it (a module of its own for `tasks`).
_PUBLIC = {'Reptile': 'learner', 'FOMAML': 'learner', 'load': 'learner',
           'TrainingDiverged': 'learner', 'Adam': 'inner_loop', 'SGD': 'inner_loop',
           'Estimate': 'statistics', 'UserError': 'errors', 'tasks': 'tasks',
           'models': 'models', 'callbacks': 'callbacks'}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError('module %r has no attribute %r' % (__name__, name))
    module = importlib.import_module('.' + _PUBLIC[name], __name__)
    return module if name == _PUBLIC[name] else getattr(module, name)
