"""The man pages, generated so that they cannot drift from what they describe.

cloudvip(8) comes from the command line's own parser (every command's usage, description and options
as `--help` prints them, and the signals, files and exit status it shows below); cloudvip.conf(5) from
docs/configuration.md, the configuration reference. Run at build time (`make dist`, the Debian
package); not part of the product wheel.

    python packaging/manpages.py OUT_DIR
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG_REFERENCE = REPO / "docs" / "configuration.md"


def escape(text: str) -> str:
    """Plain text for roff: backslashes, and a line that would start with a control character."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return re.sub(r"^([.'])", r"\\&\1", text, flags=re.M)


def inline(text: str) -> str:
    """Markdown's inline marks as roff fonts: `code` and **strong** bold, *emphasis* italic, links as text."""
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)
    parts = re.split(r"(`[^`]+`|\*\*[^*]+\*\*|\*[^*\s][^*]*\*)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(r"\fB" + escape(part[1:-1]) + r"\fR")
        elif part.startswith("**") and part.endswith("**") and len(part) > 3:
            out.append(r"\fB" + escape(part[2:-2]) + r"\fR")
        elif part.startswith("*") and part.endswith("*") and len(part) > 2:
            out.append(r"\fI" + escape(part[1:-1]) + r"\fR")
        else:
            out.append(escape(part))
    return "".join(out)


def header(name: str, section: int, version: str, manual: str) -> list[str]:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.datetime.fromtimestamp(int(epoch), datetime.UTC) if epoch else datetime.datetime.now(datetime.UTC)
    return [f'.TH {name.upper()} {section} "{when:%Y-%m-%d}" "cloudvip {version}" "{manual}"']


# ---------- cloudvip(8) from the parser ----------
@dataclass
class HelpItem:
    term: str
    text: list[str] = field(default_factory=list)


@dataclass
class CommandHelp:
    usage: str
    description: str
    sections: dict[str, list[HelpItem]]


def parse_help(text: str) -> CommandHelp:
    """argparse's help (unwrapped: COLUMNS is set wide) into usage, description and items per section."""
    blocks = text.strip("\n").split("\n\n")
    usage = " ".join(blocks[0].split())[len("usage: "):]
    description: list[str] = []
    sections: dict[str, list[HelpItem]] = {}
    for block in blocks[1:]:
        lines = block.splitlines()
        if not lines[0].endswith(":") or lines[0].startswith(" "):
            description.append(" ".join(line.strip() for line in lines))
            continue
        items: list[HelpItem] = []
        for line in lines[1:]:
            indent = len(line) - len(line.lstrip())
            if indent == 2:
                term, _, rest = line.strip().partition("  ")
                items.append(HelpItem(term, [rest.strip()] if rest.strip() else []))
            elif items:
                items[-1].text.append(line.strip())
        sections[lines[0][:-1]] = items
    return CommandHelp(usage, "\n".join(description), sections)


def _items(items: list[HelpItem]) -> list[str]:
    out = []
    for item in items:
        out += [".TP", r"\fB" + escape(item.term) + r"\fR", inline(" ".join(item.text))]
    return out


def cloudvip_8() -> str:
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "1000"  # one line per option, so that the help parses back
    try:
        return _cloudvip_8()
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns


def _cloudvip_8() -> str:
    from cloudvip import __version__
    from cloudvip.cli import ABOUT, DESCRIPTION, SECTIONS, build_parser

    commands: dict[str, argparse.ArgumentParser] = {}
    parser = build_parser(commands)
    top = parse_help(parser.format_help())
    out = header("cloudvip", 8, __version__, "System Administration")
    out += [".SH NAME", r"cloudvip \- " + escape(DESCRIPTION[0].lower() + DESCRIPTION[1:].rstrip("."))]
    out += [".SH SYNOPSIS", r"\fBcloudvip\fR \fICOMMAND\fR [\fIOPTIONS\fR]", ".br",
            r"\fBcloudvip\fR \-\-version | \-\-help"]
    out += [".SH DESCRIPTION", inline(ABOUT)]
    out += [".SH COMMANDS"]
    for name, command in commands.items():
        help_ = parse_help(command.format_help())
        out += [f".SS {escape(name)}", r"\fB" + escape(help_.usage.split(" [")[0]) + r"\fR" + escape(help_.usage[
            len(help_.usage.split(" [")[0]):])]
        if help_.description:
            out += [".PP", inline(help_.description)]
        for section, items in help_.sections.items():
            items = [i for i in items if i.term != "-h, --help"]
            if items:
                out += [".PP", escape(section[0].upper() + section[1:]) + ":", ".RS"] + _items(items) + [".RE"]
    out += [".SH OPTIONS"] + _items(top.sections["options"])
    for title, text in SECTIONS.items():
        out += [f".SH {title}"]
        for line in text.splitlines():
            term, sep, rest = line.partition("  ")
            out += [".TP", inline(term), inline(rest)] if sep and title != "SEE ALSO" else [".PP", inline(line)]
    return "\n".join(out) + "\n"


# ---------- cloudvip.conf(5) from the configuration reference ----------
def markdown_to_man(markdown: str, name: str, section: int, version: str, manual: str) -> str:
    """The subset of Markdown the docs use: headings, paragraphs, lists, fenced code, inline marks."""
    out = header(name, section, version, manual)
    lines = markdown.splitlines()
    i = 0
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            out.extend([".PP", inline(" ".join(paragraph))])
            paragraph.clear()

    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            flush()
            i += 1
            out += [".PP", ".RS 4", ".nf"]
            while i < len(lines) and not lines[i].startswith("```"):
                out.append(escape(lines[i]) if lines[i] else "")
                i += 1
            out += [".fi", ".RE"]
        elif m := re.match(r"(#+)\s+(.*)", line):
            flush()
            level, title = len(m.group(1)), m.group(2)
            if level == 1:
                out += [".SH NAME", f"{escape(name)} \\- {inline(title.split(':', 1)[-1].strip())}",
                        ".SH DESCRIPTION"]
            elif level == 2:
                out.append(f".SH {inline(title.upper())}")
            else:
                out.append(f".SS {inline(title)}")
        elif m := re.match(r"(\s*)[-*]\s+(.*)", line):
            flush()
            item = [m.group(2)]
            while i + 1 < len(lines) and lines[i + 1].startswith("  ") and not re.match(r"\s*[-*]\s", lines[i + 1]):
                i += 1
                item.append(lines[i].strip())
            depth = 2 if m.group(1) else 0
            out += [f".IP \\(bu {4 + depth}", inline(" ".join(item))]
        elif not line.strip():
            flush()
        else:
            paragraph.append(line.strip())
        i += 1
    flush()
    return "\n".join(out) + "\n"


def cloudvip_conf_5() -> str:
    from cloudvip import __version__

    return markdown_to_man(CONFIG_REFERENCE.read_text(), "cloudvip.conf", 5, __version__, "File Formats")


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path("build/man")
    out.mkdir(parents=True, exist_ok=True)
    (out / "cloudvip.8").write_text(cloudvip_8())
    (out / "cloudvip.conf.5").write_text(cloudvip_conf_5())
    print(f"{out}/cloudvip.8, {out}/cloudvip.conf.5")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
