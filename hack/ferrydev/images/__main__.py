"""`python -m ferrydev.images build|import`: the command line of `ferrydev.images`.

Owns: parsing the arguments and printing each built image's name, tarball and digest.
Must not: hold any build logic (`ferrydev.images` does).
"""

from __future__ import annotations

import argparse
import sys

from ferrydev import images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ferrydev.images",
        description=images.__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("command", choices=["build", "import"])
    parser.add_argument("names", nargs="*", help="images (default: all)")
    parser.add_argument("--address", help="containerd socket for `import`")
    args = parser.parse_args(argv)
    try:
        built = images.build(args.names or images.ALL)
        if args.command == "import":
            if not args.address:
                parser.error("import needs --address")
            images.import_images(args.address, built)
    except images.ImageError as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 1
    for b in built:
        print(f"{b.name}\t{b.tarball}\t{b.manifest_digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
