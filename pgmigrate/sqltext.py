"""Reading SQL text the way PostgreSQL and psql read it.

One pass over a file finds its statements (their start and end offsets), whether it needs psql
(backslash meta-commands, ``COPY ... FROM stdin`` data blocks) and whether it controls transactions
itself (``BEGIN``/``COMMIT`` at top level). The lexer knows quotes, ``E''`` strings, quoted
identifiers, dollar quotes, nested block comments and parentheses, so a ``;`` inside any of those
does not end a statement.
"""

from __future__ import annotations

import io
import re
from collections import namedtuple
from collections.abc import Iterable, Iterator

BOM = "\ufeff"

# PostgreSQL's scanner: identifiers and dollar-quote tags start with a letter, '_' or any non-ASCII
# character, and go on with those, digits (and '$' in identifiers); psql variables likewise. Written
# as negated classes (the ASCII characters that are not allowed): a class spanning all of Unicode
# takes milliseconds to compile.
_ID_START = r"[^\x00-\x40\x5b-\x5e\x60\x7b-\x7f]"
_ID_CONT = r"[^\x00-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]"
_ID_CONT_OR_DOLLAR = r"[^\x00-\x23\x25-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]"
_DOLLAR_TAG = re.compile(rf"\$({_ID_START}{_ID_CONT}*)?\$")
_COPY_FROM_STDIN = re.compile(r"^\s*COPY\b.*\bFROM\s+STDIN\b", re.IGNORECASE | re.DOTALL)
_TXN_CONTROL = re.compile(
    r"^\s*(BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK|ABORT|PREPARE\s+TRANSACTION)\b(?!\s+ATOMIC)"
    r"(?!\s+((WORK|TRANSACTION)\s+)?TO\b)",  # ROLLBACK TO SAVEPOINT stays inside the transaction
    re.IGNORECASE,
)
# Statements PostgreSQL refuses to run inside a transaction block.
_NO_TXN = re.compile(
    r"^\s*(CREATE\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY|DROP\s+INDEX\s+CONCURRENTLY|REINDEX\b[^;]*?\bCONCURRENTLY"
    r"|VACUUM|CREATE\s+DATABASE|DROP\s+DATABASE|ALTER\s+SYSTEM|CREATE\s+TABLESPACE|DROP\s+TABLESPACE"
    r"|ALTER\s+DATABASE\s+\S+\s+SET\s+TABLESPACE|CREATE\s+SUBSCRIPTION|DROP\s+SUBSCRIPTION|CLUSTER\s*;?\s*$)\b",
    re.IGNORECASE,
)
_ADD_ENUM_VALUE = re.compile(r"^\s*ALTER\s+TYPE\s+.+?\s+ADD\s+VALUE\s+(IF\s+NOT\s+EXISTS\s+)?'((?:[^']|'')*)'",
                             re.IGNORECASE | re.DOTALL)
_VARIABLE = re.compile(rf":(['\"])({_ID_START}{_ID_CONT}*)\1")
_ROUTINE = re.compile(r"CREATE\s+(OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE)\b", re.IGNORECASE)
_NEWLINE = re.compile(r"\r\n?|\n")
_IDENT_CHAR = re.compile(_ID_CONT_OR_DOLLAR)
_SPACE = re.compile(r"[ \t\r\n\f]+")
# What the lexer acts on; everything between is skipped by one search. In CREATE FUNCTION and
# CREATE PROCEDURE statements every word is a token too (BEGIN ATOMIC ... END bodies).
_TOKEN = re.compile(r"""--|/\*|[\\'"$();]|:(?=['"])""")
_TOKEN_OR_WORD = re.compile(rf"""--|/\*|[\\'"$();]|:(?=['"])|{_ID_START}{_ID_CONT_OR_DOLLAR}*""")


class Statement(namedtuple("Statement", "text start line buffer_line", defaults=(0,))):
    """One SQL statement: its text and where it starts in the file (0-based offset, 1-based line);
    ``buffer_line``: where psql's query buffer for it begins (a /* */ comment before it counts, --
    does not)."""

    __slots__ = ()

    @property
    def first_line(self) -> str:
        """The statement's first non-empty line, for messages."""
        for raw in self.text.splitlines():
            if raw.strip() and not raw.strip().startswith("--"):
                return raw.strip()
        return self.text.strip().splitlines()[0] if self.text.strip() else ""


class MetaCommand(namedtuple("MetaCommand", "line name text")):
    """A psql backslash command: its line, its name (``\\set``) and its whole text."""

    __slots__ = ()

    @property
    def args(self) -> list[str]:
        return self.text.split()[1:]


class Scan:
    """What one pass over a file found."""

    def __init__(self) -> None:
        self.statements: list[Statement] = []
        self.meta_commands: list[MetaCommand] = []
        self.copy_stdin_lines: list[int] = []
        self.transaction_control: list[tuple[int, str]] = []  # (line, keyword)
        self.no_transaction: list[tuple[int, str]] = []  # (line, what) of statements a transaction refuses
        self.variables: list[tuple[int, str]] = []  # (line, name) of :'x' and :"x"

    @property
    def needs_psql(self) -> bool:
        return bool(self.meta_commands or self.copy_stdin_lines or self.variables)

    @property
    def has_content(self) -> bool:
        """Anything besides whitespace and comments."""
        return bool(self.statements or self.meta_commands)


def strip_bom(text: str) -> str:
    return text[1:] if text.startswith(BOM) else text


def line_of(text: str, offset: int) -> int:
    """1-based line number of a 0-based character offset (LF, CRLF and a lone CR each end a line)."""
    head = text[: max(0, offset)]
    return head.count("\n") + head.count("\r") - head.count("\r\n") + 1


def line_of_position(text: str, position: int, base: int = 0) -> int:
    """Line of a server error position (1-based characters into the text sent, which starts at
    ``base`` in ``text``)."""
    return line_of(text, base + max(position, 1) - 1)


def normalized_lines(lines: Iterable[str]) -> Iterator[str]:
    """The lines (BOM and line endings already removed) with formatting that does not change
    meaning dropped: trailing whitespace on each line and trailing blank lines. Streams."""
    blanks = 0
    for line in lines:
        line = line.rstrip()
        if not line:
            blanks += 1
            continue
        yield "\n" * blanks + line + "\n"
        blanks = 0


def normalized(text: str) -> str:
    """The text without a BOM, with LF line endings, and without trailing whitespace or blank lines."""
    return "".join(normalized_lines(io.StringIO(strip_bom(text), newline=None)))


def checksum_lines(lines: Iterable[str]) -> str:
    """sha256 (hex) of the normalized lines: a formatting-only edit keeps the checksum."""
    from hashlib import sha256  # OpenSSL: loaded only by the commands that compare checksums

    digest = sha256()
    for chunk in normalized_lines(lines):
        digest.update(chunk.encode("utf-8"))
    return digest.hexdigest()


def checksum(text: str) -> str:
    if _ALREADY_NORMAL.fullmatch(text):  # the usual case: hash it as it is, without splitting lines
        from hashlib import sha256

        return sha256(text.encode("utf-8")).hexdigest()
    return checksum_lines(io.StringIO(strip_bom(text), newline=None))


# ASCII text, ending in one newline after a visible character, with no CR and no whitespace at the
# end of any line: normalizing it changes nothing.
_ALREADY_NORMAL = re.compile(
    r"(?:(?:[\x00-\x09\x0b\x0c\x0e-\x7f]*[\x21-\x7e])?\n)*[\x00-\x09\x0b\x0c\x0e-\x7f]*[\x21-\x7e]\n", re.ASCII
)


def has_statements(text: str) -> bool:
    """Whether the text has anything besides whitespace and comments."""
    return scan_sql(text).has_content


def scan_sql(text: str) -> Scan:
    """Split ``text`` (BOM already stripped) into statements and note what needs psql."""
    return _Lexer(text).run()


def _count_atomic(word: str, atomic: int) -> int:
    """The depth of ``BEGIN ATOMIC ... END`` bodies in CREATE FUNCTION/PROCEDURE after ``word``:
    their semicolons do not end the statement (as psql sees it)."""
    if word == "END":
        return max(0, atomic - 1)
    if word == "BEGIN" or (word == "CASE" and atomic):
        return atomic + 1
    return atomic


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)
        self.scan = Scan()
        self._lead: int | None = None  # line of a block comment that opens psql's buffer for the next statement
        self._enum_values: dict[str, int] = {}  # label -> line of the ALTER TYPE ... ADD VALUE that adds it
        self._line_at = (0, 1)  # (offset, line there): lines are counted forward from the last one asked

    def _line(self, offset: int) -> int:
        """Line of ``offset``; offsets asked for never go backwards, so each character is counted once."""
        last, line = self._line_at
        line += line_of(self.text[last:offset], offset - last) - 1  # offsets are token starts: never inside CRLF
        self._line_at = (offset, line)
        return line

    def run(self) -> Scan:
        text, n = self.text, self.n
        space, find = _SPACE.match, _TOKEN.search
        i = 0
        start = None  # offset where the current statement's first token starts
        depth = 0  # parentheses
        atomic = 0  # BEGIN ATOMIC ... END blocks (and CASE ... END inside them) of SQL-standard bodies
        while i < n:
            if start is None:
                blank = space(text, i)
                if blank:
                    i = blank.end()
                    continue
                if not text.startswith(("--", "/*", "\\"), i):
                    start = i
                    find = (_TOKEN_OR_WORD if _ROUTINE.match(text, start) else _TOKEN).search
            m = find(text, i)  # the regex engine skips everything that means nothing here
            if m is None:
                break
            j = m.start()
            c = text[j]
            if c == "-":  # a -- comment ends at \n or \r, as in PostgreSQL's scanner (CR-only files)
                i = self._line_end(j)
            elif c == "/":
                if start is None and self._lead is None:
                    self._lead = self._line(j)
                i = self._block_comment_end(j)
            elif c == "\\":
                i = self._meta_command(j)
                if start is not None and i >= n:
                    break
            elif c == "'":
                escapes = j > 0 and text[j - 1] in "eE" and (j < 2 or not _IDENT_CHAR.match(text[j - 2]))
                i = self._quoted_end(j + 1, "'", backslash=escapes)
            elif c == '"':
                i = self._quoted_end(j + 1, '"', backslash=False)
            elif c == "$":
                i = self._dollar_end(j) if j == 0 or not _IDENT_CHAR.match(text[j - 1]) else j + 1
            elif c == "(":
                depth, i = depth + 1, j + 1
            elif c == ")":
                depth, i = max(0, depth - 1), j + 1
            elif c == ":":
                i = self._variable(j) if j == 0 or text[j - 1] != ":" else j + 1
            elif c == ";":
                if depth == 0 and atomic == 0:
                    i = self._finish(start, j + 1)
                    start, atomic = None, 0
                else:
                    i = j + 1
            else:  # a word, in a routine's statement
                atomic, i = _count_atomic(m.group(0).upper(), atomic), m.end()
        if start is not None and text[start:].strip():
            self._finish(start, n)
        return self.scan

    def _finish(self, start: int, end: int) -> int:
        body = self.text[start:end]
        line = self._line(start)
        self.scan.statements.append(Statement(body, start, line, self._lead or line))
        self._lead = None
        m = _TXN_CONTROL.match(body)
        if m:
            self.scan.transaction_control.append((line, m.group(1).upper()))
        self._check_no_transaction(body, line)
        if _COPY_FROM_STDIN.match(body):
            self.scan.copy_stdin_lines.append(line)
            return self._copy_data_end(end)
        return end

    def _check_no_transaction(self, body: str, line: int) -> None:
        m = _NO_TXN.match(body)
        if m:
            self.scan.no_transaction.append((line, " ".join(m.group(1).split()).upper()))
        for label, added in self._enum_values.items():
            if f"'{label}'" in body:
                self.scan.no_transaction.append(
                    (line, f"a use of the enum value '{label}' added on line {added} (in the same transaction)"))
        m = _ADD_ENUM_VALUE.match(body)
        if m:
            self._enum_values[m.group(2)] = line

    def _variable(self, i: int) -> int:
        """A psql variable interpolated as a literal (``:'name'``) or identifier (``:"name"``)."""
        m = _VARIABLE.match(self.text, i)
        if not m:
            return i + 1
        self.scan.variables.append((self._line(i), m.group(2)))
        return m.end()

    def _line_end(self, i: int) -> int:
        """Just past the end of the line (LF, CRLF or a lone CR, as PostgreSQL's lexer sees them)."""
        m = _NEWLINE.search(self.text, i)
        return self.n if m is None else m.end()

    def _block_comment_end(self, i: int) -> int:
        depth, i = 1, i + 2
        while i < self.n and depth:
            if self.text.startswith("/*", i):
                depth, i = depth + 1, i + 2
            elif self.text.startswith("*/", i):
                depth, i = depth - 1, i + 2
            else:
                i += 1
        return i

    def _quoted_end(self, i: int, quote: str, *, backslash: bool) -> int:
        text, n = self.text, self.n
        if backslash:  # E'...': a backslash escapes the next character
            while i < n:
                c = text[i]
                if c == "\\":
                    i += 2
                elif c == quote:
                    if i + 1 < n and text[i + 1] == quote:
                        i += 2
                    else:
                        return i + 1
                else:
                    i += 1
            return n
        while True:  # a doubled quote stands for itself
            j = text.find(quote, i)
            if j < 0:
                return n
            if text.startswith(quote, j + 1):
                i = j + 2
                continue
            return j + 1

    def _dollar_end(self, i: int) -> int:
        m = _DOLLAR_TAG.match(self.text, i)
        if not m:
            return i + 1
        tag = m.group(0)
        j = self.text.find(tag, m.end())
        return self.n if j < 0 else j + len(tag)

    def _meta_command(self, i: int) -> int:
        """A psql backslash command runs to the end of its line (``\\\\`` ends it early)."""
        end = self._line_end(i)
        command = self.text[i:end].strip()
        name = command.split()[0] if command.split() else command
        line = self._line(i)
        self.scan.meta_commands.append(MetaCommand(line, name, command))
        if command.startswith("\\;"):  # 'SELECT 1 \\; COMMIT': statements joined into one query, as psql sends them
            for part in command.split("\\;"):
                m = _TXN_CONTROL.match(part)
                if m:
                    self.scan.transaction_control.append((line, m.group(1).upper()))
        return end

    def _copy_data_end(self, i: int) -> int:
        """Skip a ``COPY ... FROM stdin`` data block, which ends at a line holding ``\\.``."""
        i = self._line_end(i) if self.text[i - 1] != "\n" else i
        while i < self.n:
            end = self._line_end(i)
            if self.text[i:end].rstrip("\r\n") == "\\.":
                return end
            i = end
        return self.n
