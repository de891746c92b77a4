"""``shell``: no placeholder value is ever script text, under dash and bash.

Every script context a placeholder can sit in (plain, "...", '...', backquotes,
``$(...)``, right after ``$(...)`` where ``#`` is no comment, after ``#``, a
here-document, ``${x:-...}``, a function body, arithmetic) is run by the real
shells with hypothesis-generated hostile values. The value must reach the
command as exactly its bytes and no command in it may run.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import PACK_HEAD, Harness, wait_until
from nerve.packs.loader import load_pack

SHELLS = [s for s in ("/bin/dash", "/bin/bash") if os.path.exists(s)]
assert len(SHELLS) == 2, "both dash and bash are needed here"

#: Where an injected command would leave its mark.
PWN_DIR = Path(tempfile.mkdtemp(prefix="nerve-pwn-"))
PWN = PWN_DIR / "pwned"

HOSTILE = [
    f";touch {PWN};",
    f"x=;touch {PWN};",
    f"`touch {PWN}`",
    f"$(touch {PWN})",
    f"'; touch {PWN}; '",
    f'"; touch {PWN}; "',
    f'\\"; touch {PWN}; \\"',
    f"`\\`touch {PWN}\\``",
    f"\ntouch {PWN}\n",
    f"\nEOF\ntouch {PWN}\n",
    f"# ; touch {PWN}",
    f"${{IFS}}touch${{IFS}}{PWN}",
    f"a[$(touch {PWN})]",
    "* ~ ~root $HOME ${HOME} $0 $1 $@ \\ \\\\ \\n",
    "'\"'\"'",
    "",
    " leading and trailing spaces ",
    "\n\n",
    "-n",
    "\u00e9\u4e2d\U0001f600",
]

#: Characters that mean something to a shell, and some that do not.
ALPHABET = st.sampled_from([*"'\"`$(){}[];&|<>#*?~\\\n\t !=-:/aZ09", "${IFS}", "\u00e9"])
payloads = st.one_of(
    st.sampled_from(HOSTILE),
    st.lists(ALPHABET, max_size=24).map("".join),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30),
    st.lists(st.sampled_from(HOSTILE), min_size=2, max_size=3).map("".join),
)

# A context: the command, as a template (the placeholder is {event.v}; the
# output file is $OUT), and what it writes given the value.
CONTEXTS: dict[str, tuple[str, object]] = {
    "plain": ('printf %s {event.v} > "$OUT"', lambda v: v),
    "plain-glued": ('printf %s x{event.v}y > "$OUT"', lambda v: f"x{v}y"),
    "double": ('printf %s "{event.v}" > "$OUT"', lambda v: v),
    "double-glued": ('printf %s "<{event.v}>" > "$OUT"', lambda v: f"<{v}>"),
    "single": ("printf %s '{event.v}' > \"$OUT\"", lambda v: v),
    "single-glued": ("printf %s 'a {event.v} b' > \"$OUT\"", lambda v: f"a {v} b"),
    "backquotes": ('x=`printf %s {event.v}`; printf %s "$x" > "$OUT"', lambda v: v.rstrip("\n")),
    "backquotes-double": (
        'x=`printf %s "{event.v}"`; printf %s "$x" > "$OUT"',
        lambda v: v.rstrip("\n"),
    ),
    "backquotes-in-double": (
        'printf %s "`printf %s "{event.v}"`" > "$OUT"',
        lambda v: v.rstrip("\n"),
    ),
    "dollar-paren": ('printf %s "$(printf %s {event.v})" > "$OUT"', lambda v: v.rstrip("\n")),
    "dollar-paren-single": (
        'printf %s "$(printf %s \'{event.v}\')" > "$OUT"',
        lambda v: v.rstrip("\n"),
    ),
    "after-dollar-paren": (
        'x=$(printf a)#{event.v}; printf %s "$x" > "$OUT"',
        lambda v: "a#" + v,
    ),
    "after-hash-in-word": ('x=a#{event.v}; printf %s "$x" > "$OUT"', lambda v: "a#" + v),
    "comment": ('printf done > "$OUT" # {event.v}', lambda v: "done"),
    "heredoc": ('cat > "$OUT" <<EOF\n{event.v}\nEOF', lambda v: v + "\n"),
    "heredoc-tabs": ('cat > "$OUT" <<-EOF\n\t<{event.v}>\n\tEOF', lambda v: f"<{v}>\n"),
    "default": ('printf %s "${{NOPE:-{event.v}}}" > "$OUT"', lambda v: v),
    "default-unquoted": ('x=${{NOPE:-{event.v}}}; printf %s "$x" > "$OUT"', lambda v: v),
    "function": (
        'f() {{ printf %s "{event.v}" > "$OUT"; }}; set -- one two; f three',
        lambda v: v,
    ),
    "subshell": ('(printf %s {event.v}) > "$OUT"', lambda v: v),
    "pipeline": ('printf %s {event.v} | cat > "$OUT"', lambda v: v),
}


def load_rule(command: str, shell: str) -> list[object]:
    pack = load_pack(
        (
            PACK_HEAD
            + "  - id: r\n    when: {event: t.go}\n    do:\n"
            + f"      - shell: {{command: {_yaml(command)}, interpreter: {shell}, wait: true}}\n"
        ).encode(),
        filename="test.yaml",
    )
    assert not pack.errors, pack.errors
    return list(pack.rules)


def _yaml(text: str) -> str:
    import json

    return json.dumps(text)


def run_script(
    shell: str, command: str, value: str, out: Path
) -> subprocess.CompletedProcess[bytes]:
    """What the ``shell`` action runs for ``command`` with ``{event.v}`` = value."""
    from nerve.shellscript import rewrite
    from nerve.templates import Names, parse

    template = parse(command, Names(None, frozenset()))
    script = rewrite(template.pieces)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(PWN_DIR),
        "OUT": str(out),
        # As the action does: ValueError where the shell cannot take the value.
        **script.environment([value] * len(script.names), list(script.names)),
    }
    return subprocess.run(
        [shell, "-c", script.text],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=10,
        check=False,
    )


@pytest.fixture(autouse=True)
def _no_pwn() -> Iterator[None]:
    PWN.unlink(missing_ok=True)
    yield
    assert not PWN.exists(), "an injected command ran"


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("context", list(CONTEXTS))
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=payloads)
@example(value=HOSTILE[0])
def test_a_value_arrives_as_its_bytes_and_runs_nothing(
    shell: str, context: str, value: str, tmp_path: Path
) -> None:
    command, expected = CONTEXTS[context]
    out = tmp_path / "out"
    out.unlink(missing_ok=True)
    proc = run_script(shell, command, value, out)
    assert not PWN.exists(), f"{shell} ran an injected command: {command!r} with {value!r}"
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == expected(value).encode(), (shell, command, value)  # type: ignore[operator]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(
    "command",
    [
        'printf %s "$(( {event.v} + 1 ))" > "$OUT"',
        'x=$(( {event.v} )); printf %s "$x" > "$OUT"',
        'printf %s $(({event.v}*2)) > "$OUT"',
        # bash evaluates these as arithmetic too (dash refuses them: the run fails)
        'declare -i n={event.v}; printf %s "$n" > "$OUT"',
        'declare -i n; n="{event.v}"; printf %s "$n" > "$OUT"',
        'declare -i n; n=\'{event.v}\'; printf %s "$n" > "$OUT"',
        'let "n = {event.v}"; printf %s "$n" > "$OUT"',
        'a[{event.v}]=1; printf %s ok > "$OUT"',
        '[[ "{event.v}" -eq 1 ]]; printf %s ok > "$OUT"',
        'printf %s "${{HOME:{event.v}}}" > "$OUT"',
        '(( n = {event.v} )); printf %s "$n" > "$OUT"',
    ],
)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=payloads)
def test_arithmetic_takes_integers_only(
    shell: str, command: str, value: str, harness_for_shell: Harness, tmp_path: Path
) -> None:
    """bash evaluates ``a[$(cmd)]`` in arithmetic: only integers get there."""
    from nerve.shellscript import check_integer

    out = tmp_path / "out"
    out.unlink(missing_ok=True)
    harness_for_shell.load_shell(command, shell)
    harness_for_shell.publish("t.go", v=value, out=str(out))
    error = harness_for_shell.outcome()
    assert not PWN.exists()
    if check_integer(value):
        assert error is None or "must be an integer" not in error
    else:
        assert error is not None
        assert "must be an integer" in error


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("context", ["plain", "single", "backquotes", "after-dollar-paren"])
def test_the_engine_runs_hostile_values_safely(
    shell: str, context: str, harness_for_shell: Harness, tmp_path: Path
) -> None:
    """Through the real action and engine, with the value in an event."""
    command, expected = CONTEXTS[context]
    for value in HOSTILE:
        out = tmp_path / "out"
        out.unlink(missing_ok=True)
        harness_for_shell.load_shell(command, shell)
        harness_for_shell.publish("t.go", v=value, out=str(out))
        error = harness_for_shell.outcome()
        assert error is None, error
        assert not PWN.exists(), (shell, command, value)
        assert out.read_bytes() == expected(value).encode()  # type: ignore[operator]


@pytest.mark.parametrize("wait", [True, False])
def test_a_nul_in_a_value_is_a_clear_failure(harness_for_shell: Harness, wait: bool) -> None:
    harness_for_shell.load_shell('printf %s "{event.v}" > "$OUT"', "/bin/sh", wait=wait)
    harness_for_shell.publish("t.go", v="a\x00b", out="/dev/null")
    assert harness_for_shell.outcome() == (
        "the value of {event.v} holds a NUL character, which a command cannot receive"
    )


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("echo \\{event.v}", "cannot follow a backslash"),
        ('echo "\\{event.v}"', "cannot follow a backslash"),
        ("cat <<'EOF'\n{event.v}\nEOF", "quoted here-document"),
        ('cat <<"EOF"\n{event.v}\nEOF', "quoted here-document"),
        ("cat <<\\EOF\n{event.v}\nEOF", "quoted here-document"),
        ("cat <<{event.v}\nx\n", "delimiter"),
        ("echo $'a{event.v}'", "$'...'"),
    ],
)
def test_places_with_no_safe_reference_are_located_load_errors(command: str, message: str) -> None:
    pack = load_pack(
        (
            PACK_HEAD
            + "  - id: r\n    when: {event: t.go}\n    do:\n"
            + f"      - shell: {_yaml(command)}\n"
        ).encode(),
        filename="test.yaml",
    )
    assert len(pack.errors) == 1, pack.errors
    text = str(pack.errors[0])
    assert text.startswith("test.yaml:"), text
    assert "do[0].shell" in text, text
    assert message in text, text


# ----------------------------------------------------------------- harness


class ShellHarness(Harness):
    """A harness whose one rule runs a shell command and reports how it went."""

    def __init__(self) -> None:
        super().__init__()
        self._count = 0

    def load_shell(self, command: str, shell: str, *, wait: bool = True) -> None:
        self.load(
            "  - id: r\n    mode: queued\n    when: {event: t.go}\n    do:\n"
            f"      - shell: {{command: {_yaml(command)}, interpreter: {shell}, "
            f"wait: {str(wait).lower()}, env: {{OUT: '{{event.out}}'}}}}\n"
            "      - emit: t.ran\n"
        )

    def outcome(self) -> str | None:
        """The error of the next run to end (None: it went well)."""
        self._count += 1
        kinds = ("t.ran", "rule.failed")
        done = wait_until(
            lambda: (
                (hits := [e for e in list(self.recorder.events) if e.type in kinds])
                and len(hits) >= self._count
                and hits
            ),
            10,
            "the run to end",
        )
        last = done[self._count - 1]
        return None if last.type == "t.ran" else str(last.data["error"])


@pytest.fixture
def harness_for_shell() -> Iterator[ShellHarness]:
    h = ShellHarness()
    yield h
    h.close()


TOKENS = [
    '"', "'", "`", "$(", ")", "(", "#", "\n", " ", ";", "|", "&&", "echo", "x=", "}}",
    "$((", "))", "${{", "<<EOF\n", "\nEOF\n", "\\", "{{", "}}", "printf %s ", "$'", "[[ ", " ]]",
    "let ", "case a in a) ", ";; esac", "{event.v}", "{event.v}", "{event.v}",
]  # fmt: skip


@pytest.mark.parametrize("shell", SHELLS)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    tokens=st.lists(st.sampled_from(TOKENS), min_size=1, max_size=14),
    value=st.sampled_from(HOSTILE[:13]),
)
@example(tokens=["let "], value=HOSTILE[12])  # found by this test: bash's let evaluates a[...]
@example(tokens=["x=$(( ", "{event.v}", " ))"], value=HOSTILE[12])
def test_any_script_shape_never_runs_a_value(
    shell: str, tokens: list[str], value: str, tmp_path: Path
) -> None:
    """Random scripts, most of them broken: a value never becomes a command."""
    from nerve.shellscript import ShellScriptError
    from nerve.templates import TemplateError

    PWN.unlink(missing_ok=True)
    command = "".join(tokens)
    if "{event.v}" not in command:
        command += "{event.v}"
    try:
        run_script(shell, command, value, tmp_path / "out")
    except (ShellScriptError, TemplateError):
        return  # refused at load time: nothing runs
    except ValueError as exc:
        assert "must be an integer" in str(exc)  # noqa: PT017 (refused at run time)
        return
    except subprocess.TimeoutExpired:
        pass  # waiting on a here-document or the like: still nothing may have run
    assert not PWN.exists(), (shell, command, value)


@settings(max_examples=3000, deadline=None)
@given(tokens=st.lists(st.sampled_from([*TOKENS, "\t", "-", "x", "]", "["]), max_size=30))
def test_the_rewriter_places_every_placeholder_or_refuses(tokens: list[str]) -> None:
    """Any text: each placeholder gets a reference, or the command is refused."""
    from nerve.shellscript import ENV_PREFIX, ShellScriptError, rewrite

    pieces: list[str | None] = []
    for token in tokens:
        pieces.append(None if token == "{event.v}" else token)
    try:
        script = rewrite(pieces)
    except ShellScriptError:
        return
    count = pieces.count(None)
    assert len(script.names) == count
    assert script.text.count("${" + ENV_PREFIX) == count


@pytest.mark.parametrize("nest", ["$(", '"$("', "${", "$((", "$["])
def test_deep_nesting_is_a_load_error_not_a_crash(nest: str) -> None:
    from nerve.shellscript import ShellScriptError, rewrite

    with pytest.raises(ShellScriptError, match="too deeply"):
        rewrite([nest * 5000, None])


@pytest.mark.parametrize(
    "chunk",
    [
        "declare ",
        "declare -i x\n",
        "let x\n",
        "[[ ",
        "a[",
        "x=${a:",
        "<<EOF ",
        '"',
        "\\\\",
        "# c\n",
    ],
)
def test_checking_a_long_command_takes_linear_time(chunk: str) -> None:
    import time

    from nerve.shellscript import ShellScriptError, rewrite

    start = time.perf_counter()
    with contextlib.suppress(ShellScriptError):
        rewrite([chunk * 20_000, None, " x"])
    assert time.perf_counter() - start < 2.0
