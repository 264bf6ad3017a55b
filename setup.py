"""Package metadata: `pip install -e .` for the library, `pip install -e '.[plots]'` for the
figures, `pip install -e '.[test]'` for the tests."""

from setuptools import find_packages, setup

setup(
    name='supervised-reptile-tf2',
    version='0.1.0',
    description='Reptile and first-order MAML for few-shot classification on TensorFlow 2',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='MIT',
    python_requires='>=3.10',
    packages=find_packages(exclude=['tests', 'tests.*', 'sine', 'sine.*']),  # sine/ runs in place
    package_data={'supervised_reptile.demo': ['page/*', 'model/*']},  # the demo's page and model
    install_requires=[
        'tensorflow>=2.21,<3',  # the models, the compiled inner loops, checkpoints
        'keras>=3',             # the models' layers (comes with TensorFlow)
        'tensorboard',          # tf.summary needs it at run time; TensorFlow does not pull it in
        'absl-py',              # command-line flags
        'numpy',                # host-side task sampling
        'Pillow',               # decoding the images
    ],
    extras_require={
        # Only the figures need it (sine/, supervised_reptile.plot and compare --plot,
        # benchmarks/pretrain_comparison.py): training, evaluation, adapt, export and the demo
        # run without it.
        'plots': ['matplotlib'],
        'test': [
            'pytest',
            'pytest-xdist',  # the suite on every core, a file per worker (pytest.ini)
            'playwright',  # drives Chromium through the demo page (tests/test_demo_page.py)
            'matplotlib',  # the tests draw and check the figures
        ],
    },
)
