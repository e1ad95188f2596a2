"""REST routes of the batch sync under /api/v1: imports, their error reports, sync jobs, exports and
drop logins. Thin adapters: work runs in the services, imports and jobs in the worker."""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile

from missiva import runtime
from missiva.errors import InvalidInput
from missiva.sync import drop_service, sync_jobs
from missiva.sync.export import UnsubscriberExport, export_recipients, export_unsubscribers
from missiva.sync.importer import ImportOptions, create_run, errors_csv, get_run, list_runs, run_view
from missiva.sync.readers import ReadLimits
from missiva.sync.schemas import (
    DropLoginIn,
    DropLoginOut,
    ImportFromDropIn,
    ImportOptionsIn,
    ImportRunOut,
    SyncJobIn,
    SyncJobOut,
    SyncJobPatch,
)
from missiva.web.deps import Caller, get_session, require_caller
from missiva.web.problems import problem

router = APIRouter(prefix="/api/v1", tags=["sync"])
_UPLOAD_CHUNK = 1024 * 1024
_FORM_BOOLEANS = (
    "overwrite_empty",
    "as_pending",
    "send_confirmation",
    "as_opt_out",
    "force_opt_in",
    "replace_groups",
)


def _enqueue_import(run_id: int) -> None:
    from missiva.jobs import run_import_task

    run_import_task(run_id)


def _store_upload(upload: UploadFile, account_id: int, limit: int) -> Path:
    """Copy the upload to the data directory, refusing it past `limit` bytes."""
    name = Path(upload.filename or "upload").name or "upload"
    folder = runtime.settings().data_dir / "imports" / str(account_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}-{name[:150]}"
    written = 0
    with path.open("wb") as out:
        while chunk := upload.file.read(_UPLOAD_CHUNK):
            written += len(chunk)
            if written > limit:
                out.close()
                path.unlink(missing_ok=True)
                raise InvalidInput(f"the file is larger than the limit of {limit} bytes", field="file")
            out.write(chunk)
    return path


def _form_options(form: Any) -> ImportOptionsIn:
    data: dict[str, Any] = {}
    for key, value in form.multi_items():
        if key == "file" or isinstance(value, UploadFile):
            continue
        if key == "group_ids":
            data.setdefault("group_ids", []).extend(int(v) for v in str(value).split(",") if v.strip())
        elif key == "mapping":
            data["mapping"] = json.loads(value)
        elif key in _FORM_BOOLEANS:
            data[key] = str(value).strip().lower() in {"1", "true", "yes", "on"}
        else:
            data[key] = value
    return ImportOptionsIn.model_validate(data)


@router.post("/imports", response_model=ImportRunOut, status_code=202)
async def create_import(
    request: Request, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
) -> Any:
    """Import a file: `multipart/form-data` with `file` and the options as form fields, or a JSON body
    naming a file in the drop (`drop_file`, `drop_login`) with the options. The import runs in the
    worker; poll `GET /api/v1/imports/{id}`."""
    settings = runtime.settings()
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("application/json"):
            body = ImportFromDropIn.model_validate(await request.json())
            login = drop_service.get_login(session, caller.account_id, body.drop_login)
            path = drop_service.drop_file(settings, login.username, body.drop_file)
            filename, given = path.name, body
        else:
            form = await request.form()
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise InvalidInput("send the file as the multipart field 'file'", field="file")
            given = _form_options(form)
            path = await run_in_threadpool(
                _store_upload, upload, caller.account_id, ReadLimits().max_file_bytes
            )
            filename = Path(upload.filename or "upload").name
    except ValidationError as exc:
        errors = [{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()]
        return problem(
            422, "invalid", "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors
        )
    except (json.JSONDecodeError, ValueError) as exc:
        raise InvalidInput(f"invalid request: {exc}", field="body") from None
    source = "drop" if content_type.startswith("application/json") else "api"
    return await run_in_threadpool(_start_import, session, caller.account_id, path, given, filename, source)


def _start_import(
    session: Session, account_id: int, path: Path, given: ImportOptionsIn, filename: str, source: str
) -> dict[str, Any]:
    """Create the run, queue it for the worker, and show it (already done when tasks run inline)."""
    options = ImportOptions(**given.to_options())
    run = create_run(session, account_id, path, options, filename=filename, source=source)
    session.commit()
    _enqueue_import(run.id)
    session.expire_all()
    return run_view(get_run(session, account_id, run.id))


@router.get("/imports", response_model=list[ImportRunOut])
def get_imports(
    limit: int = Query(50, ge=1, le=500),
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
) -> Any:
    """The account's latest imports, newest first."""
    return [run_view(run) for run in list_runs(session, caller.account_id, limit=limit)]


@router.get("/imports/{run_id}", response_model=ImportRunOut)
def get_import(
    run_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
) -> Any:
    """Where an import stands, with its counters."""
    return run_view(get_run(session, caller.account_id, run_id))


@router.get("/imports/{run_id}/errors.csv", response_class=StreamingResponse)
def get_import_errors(
    run_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
) -> StreamingResponse:
    """The rows an import refused: row;entry;column;reason."""
    get_run(session, caller.account_id, run_id)
    return StreamingResponse(
        errors_csv(session, run_id),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="import-{run_id}-errors.csv"'},
    )


# -- sync jobs -------------------------------------------------------------------------------------


def _job_out(job: Any) -> dict[str, Any]:
    return sync_jobs.job_view(job, runtime.settings().secret_key)


@router.get("/sync-jobs", response_model=list[SyncJobOut])
def get_sync_jobs(caller: Caller = Depends(require_caller), session: Session = Depends(get_session)) -> Any:
    """The account's sync jobs (secrets are never returned)."""
    return [_job_out(job) for job in sync_jobs.list_jobs(session, caller.account_id)]


@router.post("/sync-jobs", response_model=SyncJobOut, status_code=201)
def create_sync_job(
    body: SyncJobIn, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
) -> Any:
    """Create a scheduled import from, or export to, a file store."""
    values = body.model_dump()
    job = sync_jobs.create_job(session, caller.account_id, secret_key=runtime.settings().secret_key, **values)
    session.commit()
    return _job_out(job)


@router.get("/sync-jobs/{job_id}", response_model=SyncJobOut)
def get_sync_job(
    job_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
) -> Any:
    """One job."""
    return _job_out(sync_jobs.get_job(session, caller.account_id, job_id))


@router.patch("/sync-jobs/{job_id}", response_model=SyncJobOut)
def patch_sync_job(
    job_id: int,
    body: SyncJobPatch,
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
) -> Any:
    """Change a job; secrets sent replace the stored ones."""
    values = body.model_dump(exclude_unset=True)
    job = sync_jobs.update_job(
        session, caller.account_id, job_id, secret_key=runtime.settings().secret_key, **values
    )
    session.commit()
    return _job_out(job)


@router.delete("/sync-jobs/{job_id}", status_code=204)
def delete_sync_job(
    job_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
) -> Response:
    """Delete a job."""
    sync_jobs.delete_job(session, caller.account_id, job_id)
    session.commit()
    return Response(status_code=204)


@router.post("/sync-jobs/{job_id}/run", status_code=202)
def run_sync_job_now(
    job_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
) -> dict[str, Any]:
    """Run a job now, outside its schedule; the worker does the transfer."""
    from missiva.jobs import run_sync_job

    sync_jobs.get_job(session, caller.account_id, job_id)
    session.rollback()  # hold no transaction (on SQLite, a lock) while the job runs
    run_sync_job(job_id, claimed=False)
    session.expire_all()
    return {"queued": True, "job": _job_out(sync_jobs.get_job(session, caller.account_id, job_id))}


# -- exports ---------------------------------------------------------------------------------------


def _file_response(path: Path, name: str, zipped: bool) -> FileResponse:
    return FileResponse(
        path,
        media_type="application/zip" if zipped else "text/csv; charset=utf-8",
        filename=name + (".zip" if zipped else ".csv"),
        background=BackgroundTask(shutil.rmtree, path.parent, ignore_errors=True),
    )


def _scratch_file(name: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="missiva-export-"))
    return folder / name


@router.get("/exports/unsubscribers")
def get_unsubscribers(
    list_: list[int] = Query([], alias="list", description="only these lists"),
    exclude_list: list[int] = Query([], description="all lists but these"),
    reason: list[str] = Query([], description="only these reasons"),
    exclude_reason: list[str] = Query([], description="all reasons but these"),
    window: Literal["all", "previous_day", "since_last", "range"] = "all",
    since: datetime | None = None,
    until: datetime | None = None,
    timezone: str = "UTC",
    stream: str = Query("api", max_length=100, description="whose 'last export' since_last continues"),
    field: list[int] = Query([], description="personal field numbers to add"),
    channel: Literal["email", "sms"] | None = None,
    delimiter: str = Query(";", min_length=1, max_length=1),
    zip_: bool = Query(False, alias="zip"),
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
) -> FileResponse:
    """Unsubscribers by list, date window and reason, as CSV (optionally zipped)."""
    spec = UnsubscriberExport(
        lists_in=tuple(list_),
        lists_out=tuple(exclude_list),
        reasons_in=tuple(reason),
        reasons_out=tuple(exclude_reason),
        window=window,  # type: ignore[arg-type]
        since=since,
        until=until,
        timezone=timezone,
        stream=stream,
        fields=tuple(field),
        channel=channel,
        delimiter=delimiter,
        zipped=zip_,
    )
    path = _scratch_file("unsubscribers")
    with path.open("wb") as out:
        export_unsubscribers(session, caller.account_id, spec, out)
    session.commit()
    return _file_response(path, "unsubscribers", zip_)


@router.get("/exports/recipients")
def get_recipients_export(
    list_id: int = Query(..., alias="list"),
    status: Literal["subscribed", "pending", "unsubscribed"] | None = None,
    channel: Literal["email", "sms"] | None = None,
    field: list[int] = Query([]),
    timezone: str = "UTC",
    delimiter: str = Query(";", min_length=1, max_length=1),
    zip_: bool = Query(False, alias="zip"),
    caller: Caller = Depends(require_caller),
    session: Session = Depends(get_session),
) -> FileResponse:
    """Every recipient of a list, optionally of one status and channel, as CSV."""
    path = _scratch_file("recipients")
    with path.open("wb") as out:
        export_recipients(
            session,
            caller.account_id,
            out,
            list_id=list_id,
            status=status,
            channel=channel,
            fields=field,
            delimiter=delimiter,
            zipped=zip_,
            timezone=timezone,
        )
    return _file_response(path, f"list-{list_id}", zip_)


# -- drop logins -----------------------------------------------------------------------------------


@router.get("/drop-logins", response_model=list[DropLoginOut])
def get_drop_logins(caller: Caller = Depends(require_caller), session: Session = Depends(get_session)) -> Any:
    """The account's logins to Missiva's FTP/SFTP drop."""
    return drop_service.list_logins(session, caller.account_id)


@router.post("/drop-logins", response_model=DropLoginOut, status_code=201)
def create_drop_login(
    body: DropLoginIn, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
) -> Any:
    """A drop login; files uploaded with it are imported with its options. The password is stored hashed."""
    options = ImportOptions(**body.options.to_options())
    login = drop_service.create_login(session, caller.account_id, body.username, body.password, options)
    session.commit()
    return login


@router.delete("/drop-logins/{login_id}", status_code=204)
def delete_drop_login(
    login_id: int, caller: Caller = Depends(require_caller), session: Session = Depends(get_session)
) -> Response:
    """Remove a drop login."""
    drop_service.delete_login(session, caller.account_id, login_id)
    session.commit()
    return Response(status_code=204)
