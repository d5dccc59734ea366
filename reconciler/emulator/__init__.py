"""A local emulator of the Vertex AI `projects.locations.tuningJobs` REST API (v1 and v1beta1).

Layout (moto's roles): `urls` (routing table) -> `responses` (query/body parsing, JSON out)
-> `backend` (jobs, operations, clock-driven state machine, filters, paging; raises domain
errors) -> `exceptions` (one class per wire error); besides them `jobs` (stored records and
how they render per version), `schema` (request decoding and per-version projection from the
pinned discovery snapshots), `substates` (v1beta1's tuningJobState), `metadata` (experiment
contexts), `filters` (AIP-160 subset), `faults` (seeded faults and counters), `store` (`--data` persistence),
`server` (ASGI app, uvicorn runner), `admin` (client for `/__emulator/*`). In-process use::

    from reconciler.emulator.server import EmulatorConfig, start_emulator
    with start_emulator(EmulatorConfig(virtual_clock=True)) as emu:
        ...  # emu.url, emu.token, emu.backend

Behaviour worth knowing (choices where the real service is undocumented are marked *):
- Names carry the project number. A project id maps through `project_numbers`, else to a
  stable 12-digit number derived from the id*; a number maps to itself. Ids are random
  19-digit int64 decimals from the seeded RNG (same seed, same ids).
- create -> PENDING (createTime == updateTime, `hyperParameters` echoed, `{}` if none);
  RUNNING after `start_delay` (default 10% of `job_duration`), when `startTime`,
  `experiment`, `tuningDataStats` appear and the server fills unset hyperparameters
  (epochCount, learningRateMultiplier, adapterSize by dataset size*); SUCCEEDED after
  `job_duration` with `tunedModel` (model `@1`, endpoint, one checkpoint per epoch unless
  `exportLastCheckpointOnly`) and `endTime == updateTime`.
- A training dataset URI containing `fail` ends FAILED with `error.code` 13 (the tuned
  model exists, no endpoint). Datasets must be `gs://...jsonl` or a Vertex dataset name.
- cancel: active -> CANCELLING -> CANCELLED (`error.code` 1) after `cancel_delay`; cancel of
  a finished job is 400 FAILED_PRECONDITION; cancelling a CANCELLING job is a no-op.
- rebaseTunedModel (by `tuningJob` or `tunedModel` ref; the job must be SUCCEEDED) creates a
  new job with the source's spec overlaid by the request's `tuningJob` (hyperparameters
  chosen afresh), the same model id at the next version, the same endpoint if
  `deployToSameEndpoint`. Its operation (`<new job>/operations/<id>`) is done once the new
  job is RUNNING*; `response` holds only fields of that version's TuningJob proto.
- Versions: every tuningJobs method and its operations under `/v1/` and `/v1beta1/`
  (`operations.list` in v1 only, as in discovery); answers follow the path's version, so a v1
  answer leaves v1beta1's fields out and a v1 request with one is 400. Operations name their
  version's types (`…v1beta1.TuningJob`); `/ui/` answers in the version the rebase was asked
  through. v1beta1 jobs carry `tuningJobState`: WAITING_FOR_QUOTA while PENDING, then
  PROCESSING_DATASET, WAITING_FOR_CAPACITY, TUNING, POST_PROCESSING at 0/10/20/90% of the
  running time*. `GET /{v1,v1beta1}/{experiment}` answers the job's experiment context
  (`schemaTitle: system.Experiment`) once it runs.
- list: newest first; pageSize default 50*, maximum 1000* (larger values are lowered);
  page tokens are opaque, bound to parent and filter, and anchored on creation order, so
  jobs created while paging never shift a page; `fields=` partial responses are honoured.
- Admin (`/__emulator/*`, same bearer token, never faulted): `seed` (`{n}` in label values
  becomes the index; with `state` the jobs are pinned there), `advance`, `faults` (GET/POST),
  `jobs/{id or name}:setState` (pins the job: the clock no longer moves it, except
  CANCELLING, which goes on to CANCELLED), `stats`, `reset` (jobs, operations, counters and
  faults back to the start; the clock keeps going).
- Faults on `/v1`, `/v1beta1` and `/ui` only: latency (asyncio.sleep), `error_rate` split evenly
  between 429 RESOURCE_EXHAUSTED (with `Retry-After`) and 503 UNAVAILABLE, and `drop_rate`
  for create and rebaseTunedModel: the change is committed, then the connection is closed
  after the response headers, so the client sees a transport error, never a 500. With
  `quota_per_minute` (admin API only), creates and rebases above that rate per project and
  location (a token bucket of 10 s of it each) are answered 429, as Vertex AI's submission
  quota (counted as `quota`).
- Responses are compact JSON unless `prettyPrint=true`*; `$alt=json;enum-encoding=int`
  turns enums into numbers as Google's front end does (proto numbers, pinned beside the
  snapshots); requests may spell enums either way and keys in camelCase or snake_case.
"""
