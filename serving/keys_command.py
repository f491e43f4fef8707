"""``nudge keys create|list|revoke``: the API keys the server checks."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from serving.auth import open_api_keys
from serving.settings import Settings

__all__ = ["run_keys_command"]


def run_keys_command(
    settings: Settings, args: argparse.Namespace, out: TextIO | None = None
) -> None:
    out = out if out is not None else sys.stdout
    keys = open_api_keys(settings)
    try:
        if args.keys_command == "create":
            created = keys.create(args.name, args.scopes)
            print(
                f"key {created.key_id} ({created.name}): {', '.join(sorted(created.scopes))}",
                file=out,
            )
            print(created.secret, file=out)
            print("It is shown only this once; keys are stored hashed.", file=out)
            if settings.auth == "auto":
                print(
                    "Keys are now in force: every route needs one but /healthz and the signed "
                    "tracking links, callbacks and webhooks.",
                    file=out,
                )
        elif args.keys_command == "revoke":
            keys.revoke(args.key_id)
            print(f"revoked {args.key_id} (servers stop accepting it within 5 s)", file=out)
        else:
            listed = keys.list()
            if not listed:
                print("no API keys: the server is open (auth: auto)", file=out)
            for key in listed:
                state = "revoked" if key.revoked_at else "active"
                print(
                    f"{key.key_id}  {key.name:<20} {','.join(sorted(key.scopes)):<20} "
                    f"{key.created_at:%Y-%m-%d %H:%M}  {state}",
                    file=out,
                )
    finally:
        keys.close()
