import subprocess
import sys

import dflib


def test_top_level_entry_points_are_the_functions_even_after_submodules_load():
    import dflib.explanation  # noqa: F401
    import dflib.models  # noqa: F401
    import dflib.prediction  # noqa: F401

    assert dflib.predict is dflib.prediction.predict and callable(dflib.predict)
    assert dflib.explain is dflib.explanation.explain
    assert dflib.create_model is dflib.models.create_model
    assert "resnext50_lstm" in dflib.list_models()
    assert "centerface" in dflib.list_detectors()


def test_import_and_help_do_not_load_torch():
    code = "import sys, dflib, dflib.cli; dflib.cli.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_unknown_attribute_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        dflib.nope  # noqa: B018
