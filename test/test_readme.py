"""README's SQL examples run, in order, in a fresh database, and print what
README shows (test/readme.py)."""
import readme


def test_readme_examples_run_and_print_what_readme_shows(cluster):
    c = readme.readme_cluster()
    try:
        n, wrong = readme.check(c)
        assert n >= 8, "README has only %d SQL examples" % n
        assert not wrong, "\n\n".join("block %d:\n%s\n--- README shows:\n%s\n--- psql printed:\n%s"
                                      % w for w in wrong)
        print("    %d SQL examples of README ran and printed what README shows" % n)
    finally:
        c.cleanup()
