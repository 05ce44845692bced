"""`python -m ferrydev.images build|import|export`: the command line of `ferrydev.images`.

Owns: parsing the arguments and printing each built image's name, tarball and digest.
Must not: hold any build logic (`ferrydev.images` does).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ferrydev import images
from ferrydev.images import archives


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ferrydev.images",
        description=images.__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("command", choices=["build", "import", "export"])
    parser.add_argument("names", nargs="*", help="images (default: all)")
    parser.add_argument("--address", help="containerd socket for `import`")
    parser.add_argument("--out", type=Path, help="directory for `export`'s archives")
    args = parser.parse_intermixed_args(argv)
    if args.command == "import" and not args.address:
        parser.error("import needs --address")
    if args.command == "export" and not args.out:
        parser.error("export needs --out")
    try:
        built = images.build(args.names or images.ALL)
        if args.command == "import":
            images.import_images(args.address, built)
        if args.command == "export":
            for b in built:
                out = archives.export(b, args.out)
                print(f"{out.name}\t{out.oci}\t{b.manifest_digest}")
                print(f"{out.name}\t{out.docker}\t{out.config_digest} (config)")
            return 0
    except images.ImageError as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 1
    for b in built:
        print(f"{b.name}\t{b.tarball}\t{b.manifest_digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
