"""``pier predict NAME``: one prediction from the shell, through ``modelpier.Client``.

Same targets and options as the client (docs/client.md): a deployment through the gateway (default:
the local one; ``--url`` for another gateway or a ``pier serve`` URL), V2 over JSON or binary
tensors, gRPC, KServe V1 or Seldon. The data comes from ``--data`` or ``--file`` (``predict_input.py``);
predictions print beside the rows they answer (``-o table``) or as JSON for scripts. Errors are the
client's modelpier errors: one line and the usual exit code (3 bad input, 4 not found, 8 timeout or
unavailable, 9 unreachable).
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.table import Table as RichTable

from modelpier.cli.context import get_context
from modelpier.cli.predict_input import Table, data_for, parse_json, read_file
from modelpier.errors import InvalidInput
from modelpier.sdk.client import Client, Prediction

ROW_LIMIT = 1000  # rows printed in a table; JSON always has all


class PredictFormat(StrEnum):
    table = "table"
    json = "json"


class WireProtocol(StrEnum):
    v2 = "v2"
    kserve_v1 = "kserve-v1"
    seldon = "seldon"


def _cell(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return "[" + ", ".join(_cell(v) for v in value.tolist()) + "]"
    if isinstance(value, list):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _json_value(array: np.ndarray[Any, Any]) -> Any:
    if array.dtype.kind in "OS":
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in array.reshape(-1)]
    return array.tolist()


def prediction_doc(prediction: Prediction) -> dict[str, Any]:
    return {"model_name": prediction.model_name, "model_version": prediction.model_version,
            "request_id": prediction.request_id,
            "outputs": {name: _json_value(array) for name, array in prediction.items()}}


def prediction_table(table: Table, prediction: Prediction) -> RichTable:
    out = RichTable(title=f"{prediction.model_name} {prediction.model_version or ''}".strip(), title_justify="left")
    out.add_column("#", justify="right")
    rows = table.rows if table.rows is not None else None
    columns = table.columns or ([f"x{j}" for j in range(len(rows[0]))] if rows and isinstance(rows[0], list)
                                else [])
    for c in columns:
        out.add_column(c)
    for name in prediction:
        out.add_column(name, style="bold")
    count = min(ROW_LIMIT, max((len(a) if a.ndim else 1) for a in prediction.values()))
    for i in range(count):
        cells = [str(i)]
        if rows is not None and i < len(rows):
            cells += [_cell(v) for v in (rows[i] if isinstance(rows[i], list) else [rows[i]])]
        else:
            cells += [""] * len(columns)
        cells += [_cell(a[i]) if a.ndim and i < len(a) else _cell(a) for a in prediction.values()]
        out.add_row(*cells)
    return out


def predict(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment name (through a gateway), or model name on a `pier serve` URL."),
    data: str = typer.Option(None, "--data", "-d", help="JSON: rows [[5.1, 3.5, 1.4, 0.2]], records "
                             "[{\"a\": 1}], inputs by name {\"input-0\": [[...]]}, or a V2 request body."),
    file: Path = typer.Option(None, "--file", "-f", help="Rows to predict: .json (as --data), .csv (header row "
                              "optional), .parquet (needs pyarrow or pandas), .npy."),
    output: PredictFormat = typer.Option(PredictFormat.table, "--output", "-o",
                                         help="table: predictions beside their rows; json: for scripts."),
    url: str = typer.Option(None, "--url", help="Gateway or `pier serve` URL; default: client.url, else the "
                            "local gateway (gateway.host:gateway.port)."),
    project: str = typer.Option(None, "--project", "-p", help="Project of the deployment (default: PIER_PROJECT, "
                                "else default)."),
    model: str = typer.Option(None, "--model", help="Model behind the deployment (default: the one it serves)."),
    protocol: WireProtocol = typer.Option(WireProtocol.v2, "--protocol", help="v2, kserve-v1 or seldon."),
    binary: bool = typer.Option(None, "--binary/--json", help="V2 binary tensors or JSON (default: by size)."),
    grpc: bool = typer.Option(False, "--grpc", help="Call the V2 gRPC service instead of HTTP."),
    grpc_url: str = typer.Option(None, "--grpc-url", help="host:port of the gRPC service (default: client.grpc_url, "
                                 "else the gateway's gRPC port, or 8081 on a `pier serve` host)."),
    timeout: float = typer.Option(None, "--timeout", min=0.001, help="Deadline in seconds, sent to the server "
                                  "(default: client.timeout_s, 30)."),
    outputs: list[str] = typer.Option([], "--output-name", help="Only this output (repeatable)."),
) -> None:
    """Predict with a deployment (or a `pier serve` model) and print the answer."""
    c = get_context(ctx)
    if (data is None) == (file is None):
        raise InvalidInput("give the rows with exactly one of --data JSON or --file PATH")
    table = parse_json(data, "--data") if data is not None else read_file(file)
    with Client(url, project=project, grpc_url=grpc_url, timeout=timeout, settings=c.settings) as client:
        info = client.metadata(name, model=model)
        prediction = client.predict(name, data_for(table, info), model=model, protocol=protocol.value,
                                    binary=binary, grpc=grpc, outputs=outputs or None)
    if output is PredictFormat.json:
        sys.stdout.write(json.dumps(prediction_doc(prediction), indent=2) + "\n")
    else:
        c.out.print(prediction_table(table, prediction))
