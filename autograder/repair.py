"""Repair submissions as they really arrive (from Colab) before nbgrader grades them.

nbgrader 0.9.6 is harsh with what students send back:

- a notebook whose nbgrader cell metadata was stripped (Colab drops unknown metadata on some
  round trips, "Save a copy" in other tools too) scores 0 *silently*: exit status 0, nothing to grade;
- a copied answer cell (duplicate grade id) makes autograde fail for that student;
- a deleted test cell scores nothing;
- Colab saves nbformat 4.0 without cell ids.

``repair_notebook`` compares a submission with the released notebook and restores what nbgrader
needs: locked cells (text, demos, tests) are found by their source, answer cells by order and
content (between the locked cells around them, the most similar code cell), duplicates are
removed or demoted to plain cells, edited locked cells get their original source back, missing
ones are put back where they belong. Every change is reported as a ``Repair`` so the
instructor sees what happened instead of a silent zero.
"""

from __future__ import annotations

import copy
import difflib
import re
import uuid
from dataclasses import dataclass
from typing import Any

import nbformat
from nbformat import NotebookNode

SOLUTION_PLACEHOLDERS = ("# YOUR CODE HERE", "raise NotImplementedError()", "YOUR ANSWER HERE")
#: below this similarity (0..1) a code cell is not taken for an edited answer or test cell
ANSWER_MIN_SIMILARITY = 0.25
LOCKED_MIN_SIMILARITY = 0.5
_CELL_ID_RE = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")


@dataclass
class Repair:
    """One change made to a submission, in words an instructor can act on."""

    kind: str  # format | metadata | answer | restored | duplicate | missing | unknown
    grade_id: str | None
    message: str


def _meta(cell: NotebookNode) -> dict[str, Any]:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _gid(cell: NotebookNode) -> str | None:
    gid = _meta(cell).get("grade_id")
    return gid if isinstance(gid, str) and gid else None


def _is_solution(cell: NotebookNode) -> bool:
    return bool(_meta(cell).get("solution", False))


def _is_locked(cell: NotebookNode) -> bool:
    meta = _meta(cell)
    if not meta or meta.get("solution", False):
        return False
    return bool(meta.get("grade", False) or meta.get("locked", False))


def _norm(source: Any) -> str:
    text = "".join(source) if isinstance(source, list) else str(source or "")
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def _similarity(reference: str, candidate: str) -> float:
    """How much ``candidate`` looks like ``reference``: the larger of the diff ratio and the share
    of the reference's meaningful lines (signature, docstring) found in the candidate."""
    ref, cand = _norm(reference), _norm(candidate)
    if not ref or not cand:
        return 0.0
    ratio = difflib.SequenceMatcher(None, ref, cand, autojunk=False).ratio()
    ref_lines = [ln.strip() for ln in ref.splitlines()]
    ref_lines = [ln for ln in ref_lines if ln and ln not in SOLUTION_PLACEHOLDERS]
    if not ref_lines:
        return ratio
    cand_lines = {ln.strip() for ln in cand.splitlines()}
    contained = sum(ln in cand_lines for ln in ref_lines) / len(ref_lines)
    return max(ratio, contained)


def _new_id(taken: set[str]) -> str:
    while True:
        cid = uuid.uuid4().hex[:8]
        if cid not in taken:
            taken.add(cid)
            return cid


def normalize_format(nb: NotebookNode) -> list[Repair]:
    """Bring a notebook to nbformat 4.5 with unique, valid cell ids (Colab saves 4.0 without ids)."""
    repairs: list[Repair] = []
    old = (nb.get("nbformat"), nb.get("nbformat_minor"))
    nb.nbformat, nb.nbformat_minor = 4, max(5, int(nb.get("nbformat_minor", 0) or 0))
    taken: set[str] = set()
    fixed = 0
    for cell in nb.cells:
        cid = cell.get("id")
        if not isinstance(cid, str) or not _CELL_ID_RE.match(cid) or cid in taken:
            cell["id"] = _new_id(taken)
            fixed += 1
        else:
            taken.add(cid)
        if cell.cell_type == "code":
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)
        cell.setdefault("metadata", NotebookNode())
    if old != (4, nb.nbformat_minor) or fixed:
        repairs.append(
            Repair("format", None,
                   f"nbformat {old[0]}.{old[1]} -> 4.{nb.nbformat_minor}, {fixed} cell id(s) added or fixed")
        )
    return repairs


def repair_notebook(submission: NotebookNode, release: NotebookNode) -> tuple[NotebookNode, list[Repair]]:
    """Restore nbgrader's view of ``submission`` from the released notebook; returns (repaired, repairs).

    The submission is not modified. Cells the student added stay where they are; their code
    still runs, only nbgrader metadata moves.
    """
    sub = copy.deepcopy(submission)
    repairs = normalize_format(sub)
    refs = [c for c in release.cells if _gid(c)]
    ref_pos = {_gid(c): i for i, c in enumerate(refs)}
    match: dict[int, int] = {}  # ref position -> submission index
    how: dict[int, str] = {}
    drop: set[int] = set()  # submission indices removed (exact duplicates)

    # 1. by grade id (metadata intact); duplicates resolved here
    by_gid: dict[str, list[int]] = {}
    for i, cell in enumerate(sub.cells):
        gid = _gid(cell)
        if gid is None:
            if "nbgrader" in cell.get("metadata", {}):
                del cell.metadata["nbgrader"]
            continue
        if gid not in ref_pos:
            del cell.metadata["nbgrader"]
            repairs.append(Repair("unknown", gid, f"cell {i} carried an unknown grade id '{gid}': metadata removed"))
            continue
        by_gid.setdefault(gid, []).append(i)
    for gid, idxs in by_gid.items():
        ref = refs[ref_pos[gid]]
        keep = _resolve_duplicates(sub, ref, idxs, drop, repairs)
        match[ref_pos[gid]] = keep
        how[ref_pos[gid]] = "metadata"
        for i in idxs:
            if i != keep and i not in drop and "nbgrader" in sub.cells[i].metadata:
                del sub.cells[i].metadata["nbgrader"]

    claimed = set(match.values()) | drop

    def free(i: int, cell_type: str) -> bool:
        return i not in claimed and sub.cells[i].cell_type == cell_type

    def bounds(p: int) -> tuple[int, int]:
        lo = max([match[q] for q in match if q < p], default=-1)
        hi = min([match[q] for q in match if q > p], default=len(sub.cells))
        return lo, hi

    # 2. locked cells (and untouched answer cells) by their exact source
    for p, ref in enumerate(refs):
        if p in match:
            continue
        target = _norm(ref.source)
        cands = [i for i in range(len(sub.cells)) if free(i, ref.cell_type) and _norm(sub.cells[i].source) == target]
        if not cands:
            continue
        lo, hi = bounds(p)
        inside = [i for i in cands if lo < i < hi]
        pick = (inside or cands)[0]
        match[p], how[p] = pick, "source"
        claimed.add(pick)

    # 3. the rest (answers, edited cells) by order and content, between their matched neighbours
    for p, ref in enumerate(refs):
        if p in match:
            continue
        lo, hi = bounds(p)
        cands = [i for i in range(lo + 1, hi) if free(i, ref.cell_type)]
        if not cands:
            continue
        scored = [(_similarity(ref.source, sub.cells[i].source), -i, i) for i in cands]
        best, _, pick = max(scored)
        need = ANSWER_MIN_SIMILARITY if _is_solution(ref) else LOCKED_MIN_SIMILARITY
        if best >= need:
            match[p], how[p] = pick, "content"
            claimed.add(pick)

    # 4. answers moved elsewhere: the code cell that defines the answer's names (the last one, as it
    #    is the definition that runs last); never put back a blank answer that would redefine them
    for p, ref in enumerate(refs):
        if p in match or not _is_solution(ref) or ref.cell_type != "code":
            continue
        names = defined_names(ref.source)
        cands = [i for i in range(len(sub.cells)) if free(i, "code") and names & defined_names(sub.cells[i].source)]
        if names and cands:
            match[p], how[p] = cands[-1], "names"
            claimed.add(cands[-1])

    # restore metadata (and locked sources) on matched cells
    restored_meta: list[str] = []
    for p, i in sorted(match.items()):
        ref, cell = refs[p], sub.cells[i]
        gid = _gid(ref)
        if how[p] != "metadata":
            restored_meta.append(gid)
            if _is_solution(ref):
                by = "the names it defines" if how[p] == "names" else "order and content"
                repairs.append(Repair("answer", gid, f"answer cell '{gid}' identified by {by} (cell {i})"))
        sub.cells[i] = _restore(cell, ref, gid, repairs)

    if restored_meta:
        repairs.append(
            Repair("metadata", None,
                   f"nbgrader metadata restored on {len(restored_meta)} cell(s): {', '.join(restored_meta)}")
        )

    # put back what is missing, right after the previous released cell
    out: list[NotebookNode] = []
    inv = {i: p for p, i in match.items()}
    missing = [p for p in range(len(refs)) if p not in match]
    placed: set[int] = set()

    def put_missing_after(p_prev: int) -> None:
        for p in missing:
            if p in placed:
                continue
            prev_matched = max([q for q in match if q < p], default=-1)
            if prev_matched == p_prev:
                out.append(_missing_cell(refs[p], repairs))
                placed.add(p)

    put_missing_after(-1)
    for i, cell in enumerate(sub.cells):
        if i in drop:
            continue
        out.append(cell)
        if i in inv:
            put_missing_after(inv[i])
    for p in missing:  # matched neighbours out of order: append what is left
        if p not in placed:
            out.append(_missing_cell(refs[p], repairs))
    sub.cells = _answers_before_their_tests(out, refs, repairs)
    _dedupe_ids(sub)
    if not sub.metadata.get("kernelspec"):
        sub.metadata["kernelspec"] = copy.deepcopy(release.metadata.get("kernelspec", {}))
    return sub, repairs


def _answers_before_their_tests(cells: list[NotebookNode], refs: list[NotebookNode],
                                repairs: list[Repair]) -> list[NotebookNode]:
    """An answer cell found after its own test cell moves back right before it (else its check
    would run before the answer is defined)."""
    order = [_gid(r) for r in refs]
    for k, gid in enumerate(order):
        ref = refs[k]
        if not _is_solution(ref) or k + 1 >= len(order) or not _meta(refs[k + 1]).get("grade"):
            continue
        test = order[k + 1]
        pos = {_gid(c): i for i, c in enumerate(cells) if _gid(c)}
        if gid in pos and test in pos and pos[gid] > pos[test]:
            cell = cells.pop(pos[gid])
            cells.insert(pos[test], cell)
            repairs.append(Repair("answer", gid, f"answer cell '{gid}' was below its check: moved back before it"))
    return cells


def _resolve_duplicates(
    sub: NotebookNode, ref: NotebookNode, idxs: list[int], drop: set[int], repairs: list[Repair]
) -> int:
    """Pick the cell that keeps grade id ``ref``'s metadata among ``idxs``; mark exact copies for removal.

    Answers: copies still equal to the released (empty) answer are removed, since running them
    would overwrite the student's definition; of the rest the last one (it runs last, so its
    definition is the one the tests see) keeps the metadata. Locked cells: the first copy is
    kept; later copies identical to it are removed, edited ones become plain cells.
    """
    if len(idxs) == 1:
        return idxs[0]
    gid = _gid(ref)
    target = _norm(ref.source)
    if _is_solution(ref):
        blank = [i for i in idxs if _norm(sub.cells[i].source) == target]
        answered = [i for i in idxs if i not in blank]
        if answered:
            keep = answered[-1]
            drop.update(blank)
        else:
            keep = blank[-1]
            drop.update(blank[:-1])
        others = [i for i in idxs if i != keep and i not in drop]
        msg = f"answer cell '{gid}' appeared {len(idxs)} times: cell {keep} graded as the answer"
        if drop & set(idxs):
            msg += f", {len(drop & set(idxs))} unanswered copy(ies) removed"
        if others:
            msg += f", {len(others)} other copy(ies) kept as plain code cells"
        repairs.append(Repair("duplicate", gid, msg))
        return keep
    same = [i for i in idxs if _norm(sub.cells[i].source) == target]
    keep = same[0] if same else idxs[0]
    for i in idxs:
        if i == keep:
            continue
        if _norm(sub.cells[i].source) in (target, _norm(sub.cells[keep].source)):
            drop.add(i)
    repairs.append(
        Repair("duplicate", gid,
               f"locked cell '{gid}' appeared {len(idxs)} times: one kept, copies removed or unmarked")
    )
    return keep


def _restore(cell: NotebookNode, ref: NotebookNode, gid: str, repairs: list[Repair]) -> NotebookNode:
    """The submission's ``cell`` with the released metadata; locked cells get the released source."""
    if cell.cell_type != ref.cell_type:
        msg = f"cell '{gid}' was changed to {cell.cell_type}: restored as {ref.cell_type}"
        repairs.append(Repair("restored", gid, msg))
        new = copy.deepcopy(ref)
        if new.cell_type == "code" and not _is_locked(ref):
            new.source = cell.source
        return new
    if _is_locked(ref) and _norm(cell.source) != _norm(ref.source):
        what = "test cell" if _meta(ref).get("grade") else "locked cell"
        repairs.append(Repair("restored", gid, f"{what} '{gid}' was edited: the original restored"))
        cell.source = ref.source
    cell.metadata["nbgrader"] = copy.deepcopy(_meta(ref))
    for key in ("deletable", "editable"):
        if key in ref.metadata:
            cell.metadata[key] = ref.metadata[key]
        elif key in cell.metadata:
            del cell.metadata[key]
    if ref.get("id"):
        cell["id"] = ref["id"]
    return cell


def _missing_cell(ref: NotebookNode, repairs: list[Repair]) -> NotebookNode:
    gid = _gid(ref)
    meta = _meta(ref)
    if meta.get("grade"):
        what = "test cell"
    elif meta.get("solution"):
        what = "answer cell (put back unanswered: its tests will fail)"
    else:
        what = "locked cell"
    repairs.append(Repair("missing", gid, f"{what} '{gid}' was missing: put back from the released notebook"))
    cell = copy.deepcopy(ref)
    if cell.cell_type == "code":
        cell.outputs, cell.execution_count = [], None
    return cell


def _dedupe_ids(nb: NotebookNode) -> None:
    """Released ids win; any other cell sharing one gets a fresh id."""
    reserved = {c.get("id") for c in nb.cells if _gid(c) and c.get("id")}
    taken: set[str] = set()
    for cell in nb.cells:
        cid = cell.get("id")
        if _gid(cell) and cid and cid not in taken:
            taken.add(cid)
            continue
        if not cid or cid in taken or cid in reserved or not _CELL_ID_RE.match(cid):
            cell["id"] = _new_id(taken | reserved)
        taken.add(cell["id"])


def overwrite_from_source(nb: NotebookNode, source: NotebookNode) -> NotebookNode:
    """nbgrader's OverwriteCells (with ``add_missing_cells``) against the source notebook, in memory.

    Locked cells (tests with their hidden part, text, demos) take the source's text; graded cells
    its points; grade ids the source does not know lose their metadata; graded cells missing
    from ``nb`` are added after the cell that precedes them in the source.
    """
    nb = copy.deepcopy(nb)
    src = {_gid(c): c for c in source.cells if _gid(c)}
    for cell in nb.cells:
        gid = _gid(cell)
        if gid is None:
            continue
        s = src.get(gid)
        if s is None:
            del cell.metadata["nbgrader"]
            continue
        if cell.cell_type != s.cell_type:
            cell.cell_type = s.cell_type
            if s.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
            else:
                cell.pop("outputs", None)
                cell.pop("execution_count", None)
        meta = copy.deepcopy(_meta(s))
        meta.pop("checksum", None)
        old = cell.metadata.get("nbgrader", {})
        if "checksum" in old:
            meta["checksum"] = old["checksum"]
        cell.metadata["nbgrader"] = meta
        if _is_locked(s):
            cell.source = s.source
    present = {_gid(c) for c in nb.cells}
    order = [_gid(c) for c in source.cells if _gid(c)]
    for k, gid in enumerate(order):
        if gid in present or not _meta(src[gid]).get("grade"):
            continue
        prev = next((order[j] for j in range(k - 1, -1, -1) if order[j] in present), None)
        at = 0 if prev is None else 1 + next(i for i, c in enumerate(nb.cells) if _gid(c) == prev)
        new = copy.deepcopy(src[gid])
        if new.cell_type == "code":
            new.outputs, new.execution_count = [], None
        nb.cells.insert(at, new)
        present.add(gid)
    _dedupe_ids(nb)
    return nb


def read_notebook(path: str) -> NotebookNode:
    """Read any nbformat-4 notebook (Colab's 4.0 included, a UTF-8 byte-order mark too) without
    failing on missing ids."""
    with open(path, encoding="utf-8-sig") as f:
        return nbformat.read(f, as_version=4)


def defined_names(source: str) -> set[str]:
    """Names a cell defines at top level (``def f``, ``class C``, ``f = ...``); empty if it does not parse."""
    import ast

    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names
