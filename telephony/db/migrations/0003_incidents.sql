-- Incidents: the record operators work on, the calls it holds, its append-only timeline,
-- agencies and their dispatches, the notification outbox, field documentation, and the
-- gazetteer (province > regency > sub-district > village) its location refers to.
-- The code lists in CHECK constraints mirror telephony/incidents/model.py.

-- Gazetteer, with the codes of the Ministry of Home Affairs (Kepmendagri 300.2.2-2138/2025).
CREATE TABLE regencies (
    code           text PRIMARY KEY,           -- 35.29
    name           text NOT NULL,
    province_code  text NOT NULL,              -- 35
    province_name  text NOT NULL
);

CREATE TABLE sub_districts (                   -- kecamatan
    code          text PRIMARY KEY,            -- 35.29.01
    regency_code  text NOT NULL REFERENCES regencies (code),
    name          text NOT NULL
);

CREATE TABLE villages (                        -- desa / kelurahan
    code               text PRIMARY KEY,       -- 35.29.01.1016
    sub_district_code  text NOT NULL REFERENCES sub_districts (code),
    name               text NOT NULL,
    kind               text NOT NULL CHECK (kind IN ('desa', 'kelurahan'))
);

CREATE INDEX villages_sub_district_idx ON villages (sub_district_code, name);

-- A small seed: part of Kabupaten Sumenep (the field context's regency). Sites load the rest.
INSERT INTO regencies (code, name, province_code, province_name) VALUES
    ('35.29', 'Kabupaten Sumenep', '35', 'Jawa Timur');

INSERT INTO sub_districts (code, regency_code, name) VALUES
    ('35.29.01', '35.29', 'Kota Sumenep'),
    ('35.29.02', '35.29', 'Kalianget'),
    ('35.29.06', '35.29', 'Saronggi');

INSERT INTO villages (code, sub_district_code, name, kind) VALUES
    ('35.29.01.1015', '35.29.01', 'Kepanjin', 'kelurahan'),
    ('35.29.01.1016', '35.29.01', 'Pajagalan', 'kelurahan'),
    ('35.29.01.1017', '35.29.01', 'Bangselok', 'kelurahan'),
    ('35.29.01.1018', '35.29.01', 'Karangduak', 'kelurahan'),
    ('35.29.01.2005', '35.29.01', 'Kolor', 'desa'),
    ('35.29.01.2006', '35.29.01', 'Pabian', 'desa'),
    ('35.29.01.2019', '35.29.01', 'Pandian', 'desa'),
    ('35.29.02.2001', '35.29.02', 'Pinggirpapas', 'desa'),
    ('35.29.02.2003', '35.29.02', 'Marengan Laok', 'desa'),
    ('35.29.02.2006', '35.29.02', 'Kalianget Barat', 'desa'),
    ('35.29.02.2007', '35.29.02', 'Kalianget Timur', 'desa'),
    ('35.29.06.2006', '35.29.06', 'Saroka', 'desa'),
    ('35.29.06.2007', '35.29.06', 'Tanamerah', 'desa');

CREATE TABLE incidents (
    incident_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version            integer NOT NULL DEFAULT 1,   -- +1 on every change of this row
    status             text NOT NULL DEFAULT 'new' CHECK (status IN (
                           'new', 'verified', 'dispatched', 'on_scene', 'resolved', 'closed',
                           'cancelled', 'prank')),
    report_type        text NOT NULL CHECK (report_type IN (
                           'fire', 'flood', 'tidal_flood', 'accident', 'medical', 'hearse',
                           'crime', 'fallen_tree', 'wasp_nest', 'disaster', 'vagrants',
                           'public_nuisance', 'blood_request', 'rubbish', 'information',
                           'other')),
    priority           smallint NOT NULL CHECK (priority BETWEEN 1 AND 4),
    -- Pre-filled from the first call.
    line               text,
    caller_number      text NOT NULL DEFAULT '',
    ivr_category       text,
    ivr_skill          text,
    operator           text,
    -- Where.
    location_text      text NOT NULL DEFAULT '',
    village_code       text REFERENCES villages (code),
    sub_district_code  text REFERENCES sub_districts (code),
    latitude           double precision CHECK (latitude BETWEEN -11 AND 6),
    longitude          double precision CHECK (longitude BETWEEN 95 AND 141),
    description        text NOT NULL DEFAULT '',
    escalation_level   text NOT NULL DEFAULT 'village' CHECK (escalation_level IN (
                           'village', 'sub_district', 'regency', 'province')),
    escalation_reason  text NOT NULL DEFAULT '',
    rating             smallint CHECK (rating BETWEEN 1 AND 5),
    rated_at           timestamptz,
    dispatched_at      timestamptz,                  -- first time it became dispatched
    status_changed_at  timestamptz NOT NULL DEFAULT now(),
    created_by         text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((latitude IS NULL) = (longitude IS NULL))
);

CREATE INDEX incidents_open_idx ON incidents (created_at)
    WHERE status IN ('new', 'verified', 'dispatched', 'on_scene');

-- A call belongs to at most one incident: the primary key is what makes automatic creation
-- idempotent even when two creators race.
CREATE TABLE incident_calls (
    call_id      text PRIMARY KEY REFERENCES calls (call_id),
    incident_id  bigint NOT NULL REFERENCES incidents (incident_id),
    linked_at    timestamptz NOT NULL DEFAULT now(),
    linked_by    text NOT NULL
);

CREATE INDEX incident_calls_incident_idx ON incident_calls (incident_id);

-- Finding answered calls without an incident.
CREATE INDEX calls_answered_at_idx ON calls (answered_at) WHERE answered_at IS NOT NULL;

-- Append-only: the trigger below refuses to rewrite history.
CREATE TABLE incident_events (
    event_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id  bigint NOT NULL REFERENCES incidents (incident_id),
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,
    kind         text NOT NULL,
    detail       jsonb NOT NULL DEFAULT '{}'
);

CREATE INDEX incident_events_incident_idx ON incident_events (incident_id, event_id);

CREATE FUNCTION incident_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'incident_events is append-only';
END
$$;

CREATE TRIGGER incident_events_append_only BEFORE UPDATE OR DELETE ON incident_events
    FOR EACH ROW EXECUTE FUNCTION incident_events_append_only();

-- The one row per incident that reads use: names of the place, answer of the first call.
CREATE VIEW incident_overview AS
SELECT i.*,
       v.name AS village_name,
       s.name AS sub_district_name,
       (SELECT min(c.answered_at)
          FROM incident_calls ic JOIN calls c USING (call_id)
         WHERE ic.incident_id = i.incident_id) AS answered_at
FROM incidents i
LEFT JOIN villages v ON v.code = i.village_code
LEFT JOIN sub_districts s ON s.code = i.sub_district_code;

CREATE TABLE agencies (
    code    text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]{1,31}$'),
    name    text NOT NULL,                       -- shown to operators and recipients
    active  boolean NOT NULL DEFAULT true
);

INSERT INTO agencies (code, name) VALUES
    ('damkar', 'Pemadam Kebakaran (Damkar)'),
    ('ambulans', 'Ambulans / PSC 119'),
    ('polisi', 'Polisi'),
    ('bpbd', 'BPBD'),
    ('pdam', 'PDAM'),
    ('satpol_pp', 'Satpol PP'),
    ('dinsos', 'Dinas Sosial');

-- Who is told when an agency is dispatched; report_type NULL: every report type.
CREATE TABLE agency_recipients (
    recipient_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agency_code   text NOT NULL REFERENCES agencies (code),
    report_type   text,
    name          text NOT NULL,
    role          text NOT NULL DEFAULT '',      -- Kepala Dinas, Kabid, operator ...
    contact       text NOT NULL,                 -- phone / WhatsApp number or address
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX agency_recipients_agency_idx ON agency_recipients (agency_code);

CREATE TABLE dispatches (
    dispatch_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id      bigint NOT NULL REFERENCES incidents (incident_id),
    agency_code      text NOT NULL REFERENCES agencies (code),
    state            text NOT NULL DEFAULT 'notified' CHECK (state IN (
                         'notified', 'acknowledged', 'on_scene', 'done')),
    notified_at      timestamptz NOT NULL DEFAULT now(),
    acknowledged_at  timestamptz,
    on_scene_at      timestamptz,
    done_at          timestamptz,
    dispatched_by    text NOT NULL,
    note             text NOT NULL DEFAULT ''
);

-- An agency is sent to an incident once at a time; again only after its last dispatch is done.
CREATE UNIQUE INDEX dispatches_active_idx ON dispatches (incident_id, agency_code)
    WHERE state <> 'done';

-- Transactional outbox: written with the dispatch, drained by the notification worker.
-- Rows are never deleted: 'failed' ones stay for the report after the last attempt.
CREATE TABLE notification_outbox (
    notification_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id      bigint NOT NULL REFERENCES incidents (incident_id),
    dispatch_id      bigint REFERENCES dispatches (dispatch_id),
    recipient_id     bigint REFERENCES agency_recipients (recipient_id),
    payload          jsonb NOT NULL,
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN (
                         'pending', 'sent', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
);

CREATE INDEX notification_outbox_due_idx ON notification_outbox (next_attempt_at)
    WHERE state = 'pending';

-- Field documentation: metadata only; the files live under the attachment storage root.
CREATE TABLE incident_attachments (
    attachment_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id    bigint NOT NULL REFERENCES incidents (incident_id),
    filename       text NOT NULL,
    content_type   text NOT NULL,
    size_bytes     bigint NOT NULL CHECK (size_bytes > 0),
    sha256         text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    stored_path    text NOT NULL UNIQUE,
    uploaded_by    text NOT NULL,
    uploaded_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX incident_attachments_incident_idx ON incident_attachments (incident_id);
