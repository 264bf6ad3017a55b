"""
The few-shot drawing demo: a local web page where one draws an example of each of a few
characters and then a query, which the Omniglot model meta-trained with Reptile classifies after
fine-tuning on the drawings (python -m supervised_reptile.demo; docs/demo.md).

model/ holds the meta-trained model that ships with the package (written by
`python -m supervised_reptile.demo.ship`), page/ the page's files, server.py the HTTP side.
"""

import os

SHIPPED_MODEL = os.path.join(os.path.dirname(__file__), 'model')
