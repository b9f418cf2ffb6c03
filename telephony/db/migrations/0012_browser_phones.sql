-- A desk's phone has a kind: 'desk', a SIP phone on the desk that registers with a secret an
-- admin typed into it (0010), or 'browser', the console's WebRTC softphone, whose secret is
-- generated afresh each time the operator's desk page opens and never shown to anyone
-- (telephony/desks/softphone.py). The interface stays the desk's identity either way.
--
-- lost_at / lost_queues: the line took a browser desk out of its queues because its phone
-- went away (the browser closed or lost its network); the desk screen says so until the
-- operator joins again.

ALTER TABLE phone_secrets
    ADD COLUMN kind text NOT NULL DEFAULT 'desk' CHECK (kind IN ('desk', 'browser')),
    ADD COLUMN lost_at timestamptz,
    ADD COLUMN lost_queues text[] NOT NULL DEFAULT '{}';

-- Where Asterisk's media for browser phones lives: the one address its RTP binds to and offers
-- as ICE candidate (the site's softphone_media_address, written by the line at every start);
-- NULL: every interface (Asterisk offers them all, loopback excepted).
CREATE TABLE phone_site (
    only_row                boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    browser_media_address   inet
);
INSERT INTO phone_site DEFAULT VALUES;

-- A browser phone is a WebRTC endpoint: webrtc = yes gives it DTLS-SRTP (media_encryption
-- dtls, fingerprint verification, actpass), AVPF, ICE, rtcp-mux and bundle, and media over
-- the transport it registered on; Asterisk makes its DTLS certificate itself. No transport is
-- named: a softphone is reached over the WebSocket it registered on (ws behind a front, or
-- wss), whichever. Columns only the browser needs are NULL (unset) for desk phones; new
-- columns go at the end (CREATE OR REPLACE keeps the grants of 0010's reader role).
CREATE OR REPLACE VIEW ps_endpoints AS
    SELECT substr(operator, 7) AS id,
           CASE kind WHEN 'browser' THEN NULL ELSE 'transport-udp' END::text AS transport,
           'operators'::text AS context, 'all'::text AS disallow, 'alaw,ulaw'::text AS allow,
           'no'::text AS direct_media, 'rfc4733'::text AS dtmf_mode,
           substr(operator, 7) AS auth, substr(operator, 7) AS aors,
           'yes'::text AS rtp_symmetric, 'yes'::text AS force_rport,
           'yes'::text AS rewrite_contact,
           CASE kind WHEN 'browser' THEN 'yes' END::text AS webrtc,
           CASE kind WHEN 'browser' THEN 'yes' END::text AS dtls_auto_generate_cert,
           CASE kind WHEN 'browser' THEN host(site.browser_media_address) END::text
               AS media_address,
           CASE WHEN kind = 'browser' AND site.browser_media_address IS NOT NULL
                THEN 'yes' END::text AS bind_rtp_to_media_address
    FROM phone_secrets CROSS JOIN phone_site site;

-- A browser is qualified every 5 s: a page whose network died without closing its
-- WebSocket is found out within seconds, not half a minute (a closed WebSocket removes the
-- registration at once).
CREATE OR REPLACE VIEW ps_aors AS
    SELECT substr(operator, 7) AS id, '1'::text AS max_contacts,
           'yes'::text AS remove_existing,
           CASE kind WHEN 'browser' THEN '5' ELSE '30' END::text AS qualify_frequency,
           NULL::text AS contact
    FROM phone_secrets;
