"""The fast tier cannot drift: a test outside the slow tier that asks for real weights fails."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")


def test_a_test_that_loads_real_weights_must_be_marked_slow(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST.read_text(encoding="utf-8"))
    pytester.makeini("[pytest]\nmarkers =\n    slow: loads real model weights\n")
    pytester.makepyfile(
        test_probe="""
        import pytest
        from app.engine import weights

        def test_asks_for_the_end_model(end_model):
            pass

        def test_loads_the_teacher_itself():
            weights.ensure_verified(weights.PROFILES["qwen2.5-1.5b"])

        def test_hides_that_it_loaded_it():
            try:
                weights.provision(weights.PROFILES["qwen2.5-0.5b"])
            except Exception:
                pass

        def test_provisions_a_model_of_its_own(tmp_path):
            own = weights.ModelProfile("own", "d", "own.gguf", 1, "0", "p{n}", "1", 1, "MIT")
            with pytest.raises(weights.ModelError, match="part 1 of 1 is missing"):
                weights.provision(own)

        @pytest.mark.slow
        def test_marked_slow():
            assert "qwen2.5-1.5b" in weights.PROFILES
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA")
    # A test that catches the refusal still passes its call, then fails in teardown.
    result.assert_outcomes(passed=3, failed=1, errors=3)
    out = result.stdout.str()
    for told in (
        "test_asks_for_the_end_model uses embedded_model_path, end_model: it loads real model weights",
        "test_loads_the_teacher_itself called ensure_verified('qwen2.5-1.5b')",
        "test_hides_that_it_loaded_it called provision('qwen2.5-0.5b')",
        "mark it @pytest.mark.slow",
    ):
        assert told in out, out
