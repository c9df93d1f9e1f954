"""The shared fixtures and helpers live in the ``meshlab.testing`` pytest plugin (registered in pyproject as a
``pytest11`` entry point): ``lab`` (one lab per session), ``namespace`` (a fresh one per test), ``RunningLab``,
``start_lab``/``stop_lab``, ``eventually`` and the in-process ``MiniLab``. Import helpers from there, not from
a conftest."""
