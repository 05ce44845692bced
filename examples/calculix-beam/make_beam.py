"""Write beam.inp: a CalculiX (ccx) input deck of a steel cantilever, clamped at x = 0 and
loaded at its free end x = L by a transverse force P (-y), meshed with C3D20R bricks.

    python3 examples/calculix-beam/make_beam.py > examples/calculix-beam/beam.inp

Units: mm, N, MPa. The force is a uniform shear traction on the tip face, applied as the
consistent nodal forces of the 20-node brick's 8-node faces (corners -1/12, mid-sides +1/3 of
a face's share). Euler-Bernoulli: the tip deflects by P L^3 / (3 E I), I = b h^3 / 12.
tests/unit/test_science_examples.py checks that beam.inp is this script's output.
"""

from __future__ import annotations

import sys

#: Length, height (y, the bending direction), width (z); elements along each.
L, H, B = 200.0, 10.0, 10.0
NX, NY, NZ = 20, 2, 2
E, NU, P = 210000.0, 0.3, 100.0

#: C3D20 node order by corner/mid-side position in (x, y, z) half-steps of the element.
CORNERS = [(0, 0, 0), (2, 0, 0), (2, 2, 0), (0, 2, 0), (0, 0, 2), (2, 0, 2), (2, 2, 2), (0, 2, 2)]
EDGES = [(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7)]  # fmt: skip


def _mid(a: tuple[int, int, int], b: tuple[int, int, int]) -> tuple[int, int, int]:
    return ((a[0] + b[0]) // 2, (a[1] + b[1]) // 2, (a[2] + b[2]) // 2)


LOCAL = CORNERS + [_mid(CORNERS[a], CORNERS[b]) for a, b in EDGES]


def deck() -> str:
    # Nodes on the half-step grid where at most one index is odd (the serendipity nodes).
    ids: dict[tuple[int, int, int], int] = {}
    lines = ["** Cantilever: C3D20R, clamped at x=0, tip force at x=L (make_beam.py)", "*NODE, NSET=NALL"]
    for i in range(2 * NX + 1):
        for j in range(2 * NY + 1):
            for k in range(2 * NZ + 1):
                if (i % 2) + (j % 2) + (k % 2) > 1:
                    continue
                ids[(i, j, k)] = len(ids) + 1
                x, y, z = i * L / (2 * NX), j * H / (2 * NY) - H / 2, k * B / (2 * NZ) - B / 2
                lines.append(f"{ids[(i, j, k)]}, {x:.6g}, {y:.6g}, {z:.6g}")
    lines.append("*ELEMENT, TYPE=C3D20R, ELSET=EALL")
    n = 0
    for ex in range(NX):
        for ey in range(NY):
            for ez in range(NZ):
                n += 1
                nodes = [ids[(2 * ex + a, 2 * ey + b, 2 * ez + c)] for a, b, c in LOCAL]
                # ccx reads at most 16 entries a line: continue on the next.
                lines.append(f"{n}, " + ", ".join(map(str, nodes[:15])) + ",")
                lines.append(", ".join(map(str, nodes[15:])))
    fixed = [v for (i, _, _), v in ids.items() if i == 0]
    tip = {key: v for key, v in ids.items() if key[0] == 2 * NX}
    lines.append("*NSET, NSET=FIXED")
    lines += [f"{v}," for v in fixed]
    lines.append("*NSET, NSET=TIP")
    lines += [f"{v}," for v in tip.values()]
    # Consistent forces of a uniform traction on each 8-node face of the tip.
    force: dict[int, float] = {}
    share = P / (NY * NZ)
    for ey in range(NY):
        for ez in range(NZ):
            for dj in range(3):
                for dk in range(3):
                    if dj == 1 and dk == 1:
                        continue
                    corner = dj != 1 and dk != 1
                    node = tip[(2 * NX, 2 * ey + dj, 2 * ez + dk)]
                    force[node] = force.get(node, 0.0) + share * (-1 / 12 if corner else 1 / 3)
    lines += [
        "*MATERIAL, NAME=STEEL",
        "*ELASTIC",
        f"{E:g}, {NU:g}",
        "*SOLID SECTION, ELSET=EALL, MATERIAL=STEEL",
        "*STEP",
        "*STATIC",
        "*BOUNDARY",
        "FIXED, 1, 3",
        "*CLOAD",
    ]
    lines += [f"{node}, 2, {-f:.10g}" for node, f in sorted(force.items())]
    lines += [
        "*NODE PRINT, NSET=TIP",
        "U",
        "*NODE PRINT, NSET=FIXED, TOTALS=ONLY",
        "RF",
        "*NODE FILE",
        "U",
        "*EL FILE",
        "S",
        "*END STEP",
    ]
    return "\n".join(lines) + "\n"


def analytic_tip_deflection() -> float:
    """Euler-Bernoulli: P L^3 / (3 E I), in mm."""
    return P * L**3 / (3 * E * B * H**3 / 12)


if __name__ == "__main__":
    sys.stdout.write(deck())
