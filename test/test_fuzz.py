"""Fuzzing: src/form.c (form bodies, Twilio's signed string, URL variants,
query parameters) under libFuzzer with AddressSanitizer and
UndefinedBehaviorSanitizer, for 45 seconds from the seed corpus
test/fuzz/corpus_form/ (copied to a temporary folder).  A crash, a leak,
a sanitizer report, a broken invariant of test/fuzz/fuzz_form.c or a
target that does not build fails the test.  The cluster is not used.
Longer runs by hand: test/fuzz/run form 300."""
import importlib.machinery
import importlib.util
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def fuzz_runner():
    """test/fuzz/run as a module (the file has no .py suffix)."""
    path = os.path.join(HERE, "fuzz", "run")
    loader = importlib.machinery.SourceFileLoader("fuzz_run", path)
    spec = importlib.util.spec_from_loader("fuzz_run", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_fuzz_form(cluster):
    run = fuzz_runner()
    try:
        r = run.fuzz("form", 45)
    except run.BuildError as e:
        raise AssertionError("test/fuzz/fuzz_form.c does not build:\n%s" % e)
    print("    " + run.summary("form", r))
    assert not r["finding"], run.report("form", r)
    assert r["executions"], "libFuzzer printed no stat::number_of_executed_units:\n%s" % r["output"][-3000:]
