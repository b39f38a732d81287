"""Build of the optional C part (everything else is in pyproject.toml).

``llamarun.engine._fastdraw`` draws tokens from the whole vocabulary in C; without a C compiler
(or Python's headers) the install goes on without it and the same draw runs in numpy.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("llamarun.engine._fastdraw", ["src/llamarun/engine/_fastdraw.c"], optional=True)])
