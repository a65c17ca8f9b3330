"""A stand-in for Colab's ``google.colab`` (not on PyPI), so the notebooks' Colab branch runs off Colab.

Only ``make colab-check`` and tests put this folder on the import path; it is never installed.
"""
