-- A desk (SIP) phone that dies mid-call (unplugged, its power or network gone) sends no BYE,
-- as a dead browser sends none (0050): the caller sat in silence on a dead call until they
-- gave up themselves, the call read as ended normally and the caller was not on the call-back
-- list. Desk phones now get rtp_timeout too, so Asterisk ends the operator's leg with cause 44
-- as it does a dead browser's, and the call ends as any call whose operator's leg dropped.
--
-- Unlike a browser, a SIP phone has no ICE: nothing keeps coming while it sends no audio.
-- Talking, it sends audio 50 times a second (and many send RTCP every few s, which Asterisk
-- counts as well, even when silence suppression pauses their audio); held (it sent sendonly
-- or inactive, or Asterisk holds it), it may send nothing at all. So it has two values, the
-- site's desk_phone_rtp_timeout_seconds (60) and desk_phone_rtp_timeout_hold_seconds (600),
-- written by the line at every start beside the browsers' (the defaults are the settings',
-- for a database migrated after the line's start). pjsip.conf's [operator] template gives
-- hand-listed phones the same values.
ALTER TABLE phone_site
    ADD COLUMN desk_rtp_timeout integer NOT NULL DEFAULT 60
        CHECK (desk_rtp_timeout BETWEEN 5 AND 600),
    ADD COLUMN desk_rtp_timeout_hold integer NOT NULL DEFAULT 600
        CHECK (desk_rtp_timeout_hold BETWEEN desk_rtp_timeout AND 3600);

-- Column list as in 0050 (CREATE OR REPLACE keeps the grants of the reader role).
CREATE OR REPLACE VIEW ps_endpoints AS
    SELECT substr(operator, 7) AS id,
           CASE WHEN kind = 'browser' AND site.front_contact IS NULL THEN NULL
                ELSE 'transport-udp' END::text AS transport,
           'operators'::text AS context, 'all'::text AS disallow, 'alaw,ulaw'::text AS allow,
           'no'::text AS direct_media, 'rfc4733'::text AS dtmf_mode,
           substr(operator, 7) AS auth, substr(operator, 7) AS aors,
           'yes'::text AS rtp_symmetric, 'yes'::text AS force_rport,
           CASE WHEN site.front_contact IS NULL THEN 'yes' END::text AS rewrite_contact,
           CASE kind WHEN 'browser' THEN 'yes' END::text AS webrtc,
           CASE kind WHEN 'browser' THEN 'yes' END::text AS dtls_auto_generate_cert,
           CASE WHEN kind = 'browser' AND site.front_contact IS NULL
                THEN host(site.browser_media_address) END::text AS media_address,
           CASE WHEN kind = 'browser' AND site.front_contact IS NULL
                     AND site.browser_media_address IS NOT NULL
                THEN 'yes' END::text AS bind_rtp_to_media_address,
           CASE kind WHEN 'browser' THEN site.browser_rtp_timeout
                ELSE site.desk_rtp_timeout END::text AS rtp_timeout,
           CASE kind WHEN 'browser' THEN site.browser_rtp_timeout
                ELSE site.desk_rtp_timeout_hold END::text AS rtp_timeout_hold
    FROM phone_secrets CROSS JOIN phone_site site;
