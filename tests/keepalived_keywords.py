"""The configuration keywords keepalived's VRRP and global parsers install, read from its source
(the install_keyword* calls of keepalived/vrrp/vrrp_parser.c and core/global_parser.c), one
`SECTION KEYWORD` per line, SECTION being the path of blocks (`vrrp_instance`,
`vrrp_instance/authentication`, `-` for the top level).

    python tests/keepalived_keywords.py ../shared/keepalived/keepalived-2.4.3.tar.gz \\
        > tests/data/keepalived-2.4.3-keywords.txt

tests/unit/test_keyword_coverage.py checks that cloudvip knows every one of them: implemented,
or warned about by name; never "unknown keyword".
"""

from __future__ import annotations

import re
import sys
import tarfile

SOURCES = ("keepalived/vrrp/vrrp_parser.c", "keepalived/core/global_parser.c")
CALL = re.compile(r'\b(install_keyword_root|install_keyword|install_keyword_quoted|install_root_end_handler|'
                  r'install_sublevel_end|install_sublevel|install_level_end_handler)\s*\(\s*(?:"([^"]+)")?')


def keywords(source: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    path: list[str] = []
    last = ""
    for m in CALL.finditer(source):
        call, name = m.group(1), m.group(2)
        if call == "install_keyword_root":
            path, last = [name], name
            out.append(("-", name))
        elif call in ("install_keyword", "install_keyword_quoted") and name:
            out.append(("/".join(path) or "-", name))
            last = name
        elif call == "install_sublevel":
            path.append(last)
        elif call == "install_sublevel_end" and len(path) > 1:
            path.pop()
    return out


def main(tarball: str) -> None:
    seen: set[tuple[str, str]] = set()
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            if member.name.split("/", 1)[-1] in SOURCES:
                extracted = tar.extractfile(member)
                assert extracted is not None
                for pair in keywords(extracted.read().decode()):
                    if pair not in seen:
                        seen.add(pair)
                        print(*pair)


if __name__ == "__main__":
    main(sys.argv[1])
