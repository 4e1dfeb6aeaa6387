"""The report's word on groups: how many groups the bridge and dev hold, and, when the user gave
no groups, what a bridge that may share objects with train does to the decomposition.

A *user group* is the manifest's optional ``group`` column (``ingest --group-depth`` or a listing's
``group`` column): photos of one object, one session of an app. Split keeps a group, joined with
its near copies (``shiftkit.splits.groups.union_groups``), in one split; the report's clusters
join them the same way (:func:`clusters_manifest`), since photos of one object share their outcome
far more than photos of two.
"""

from __future__ import annotations

import polars as pl

from shiftkit.report.blocks import Section, Text

NO_GROUPS = (
    "No groups were given (`ingest --group-depth` or a listing's `group` column): the bridge is drawn "
    "image by image (near copies aside), so it may share objects with train (other photos of the same "
    "object, product or person). The bridge error, and with it the **variance** (bridge − train), is "
    "then under-stated, and the excess shows up as **data mismatch** (dev − bridge) whenever dev holds "
    "other objects than train. Give the groups you know to carve the bridge by object."
)


def has_user_groups(manifest: pl.DataFrame | None) -> bool:
    """True when the manifest carries the user's groups (a ``group`` column with a value)."""
    return manifest is not None and "group" in manifest.columns and manifest["group"].null_count() < manifest.height


def clusters_manifest(manifest: pl.DataFrame | None) -> pl.DataFrame | None:
    """The manifest with ``dup_group`` widened to the union of near copies and user groups (as split uses)."""
    if not has_user_groups(manifest):
        return manifest
    from shiftkit.splits.groups import union_groups

    assert manifest is not None
    dup = pl.coalesce(manifest["dup_group"], manifest["image_id"])
    return manifest.with_columns(dup_group=union_groups(manifest.select(dup.alias("d"))["d"], manifest["group"]))


def group_summary(preds: pl.DataFrame, manifest: pl.DataFrame | None) -> dict | None:
    """Groups per split (train, bridge, dev) and how many bridge images share a group with train.

    ``None`` without a manifest (the groups are unknown). With user groups, a group is a user group
    joined with its near copies; without, a near-copy group.
    """
    if manifest is None or not manifest.height:
        return None
    given = has_user_groups(manifest)
    man = clusters_manifest(manifest)
    assert man is not None
    rows = (
        preds.filter(pl.col("split").is_in(["train", "bridge", "dev"]) & (pl.col("domain") != "synth"))
        .select("image_id", "split")
        .join(man.select("image_id", pl.coalesce("dup_group", "image_id").alias("g")), on="image_id", how="left")
        .with_columns(g=pl.coalesce("g", "image_id"))
    )
    out: dict = {"user_groups": given}
    for s in ("train", "bridge", "dev"):
        part = rows.filter(pl.col("split") == s)
        out[s] = {"images": part.height, "groups": part["g"].n_unique() if part.height else 0}
    train_groups = rows.filter(pl.col("split") == "train").select("g").unique()
    out["bridge_images_sharing_train"] = rows.filter(pl.col("split") == "bridge").join(
        train_groups, on="g", how="semi"
    ).height
    return out


def group_sentences(info: dict | None) -> list[str]:
    """What the report says about groups (nothing when the groups are unknown)."""
    if info is None:
        return []
    kind = "the user's groups, joined with their near copies" if info["user_groups"] else "near-copy groups"
    b, d, t = info["bridge"], info["dev"], info["train"]
    out = [
        f"The bridge holds {b['groups']:,} groups ({b['images']:,} images), dev {d['groups']:,} groups "
        f"({d['images']:,} images) and train {t['groups']:,} groups ({t['images']:,} images); groups: {kind}."
    ]
    shared = info["bridge_images_sharing_train"]
    if info["user_groups"] and shared:
        out.append(
            f"{shared:,} bridge image(s) share a group with train (splits made before the groups were given?): "
            "re-run `shiftkit split --fresh` so that the bridge is carved by group."
        )
    elif info["user_groups"]:
        out.append("No group straddles train and the bridge: the variance is measured on objects train never saw.")
    else:
        out.append(NO_GROUPS)
    return out


def groups_section(data) -> list[Section]:
    """The report's "Groups" section (after the errors), when the manifest was given."""
    lines = group_sentences(getattr(data, "groups", None))
    if not lines:
        return []
    return [Section("groups", "Groups in the bridge and dev", 3, [Text(line) for line in lines])]
