-- An operator's phone that dies mid-call (a browser crashed or was killed, a laptop slept, a
-- desk phone unplugged, its power or network gone) sends no BYE (a browser's WebSocket closing
-- ends no call either: a call outlives a lost WebSocket on purpose, its media going straight
-- to Asterisk), so the caller sat in silence on a dead call until they gave up themselves, and
-- the call read as ended normally. Asterisk hangs up a channel that receives nothing for
-- rtp_timeout seconds (rtp_timeout_hold while held) with cause 44 "Requested channel not
-- available" (res_pjsip_sdp_rtp's rtp_check_timeout); the bridge hands that cause to the
-- caller's channel as it dissolves, so the call ends as any call whose operator's leg dropped
-- does: a network cause, and the caller on the call-back list ("Terputus saat bicara"); an
-- answered call-back so ended is cut short and its caller stays on the list.
--
-- Anything the phone sends counts, not only its voice: Asterisk resets the clock on every
-- packet it reads on the call's RTP or RTCP port. A live browser sends ICE's STUN consent
-- checks every few seconds all call long (RFC 7675), so a browser that holds or mutes is
-- never cut, and its rtp_timeout_hold is the same value: one that dies while its caller
-- listens to the hold music is noticed as soon. A desk (SIP) phone has no ICE: talking, it
-- sends audio 50 times a second (and many send RTCP every few s, counted even when silence
-- suppression pauses their audio); held (sendonly or inactive), it may send nothing at all.
-- So desk phones have two values, the talking one longer than a browser's (nothing proves a
-- silent desk phone alive, and a live emergency call cut is worse than a dead one noticed
-- later) and a long one while held.
--
-- The values are the site's softphone_rtp_timeout_seconds (30), desk_phone_rtp_timeout_seconds
-- (60) and desk_phone_rtp_timeout_hold_seconds (600), written by the line at every start
-- beside the media address (one set for every node: the views are shared). The columns'
-- defaults are the settings': a database migrated after the line's start (it was down then,
-- and the line migrates it once it is back) has the timeouts too. pjsip.conf's [operator]
-- template gives hand-listed desk phones the same values.
ALTER TABLE phone_site
    ADD COLUMN browser_rtp_timeout integer NOT NULL DEFAULT 30
        CHECK (browser_rtp_timeout BETWEEN 5 AND 600),
    ADD COLUMN desk_rtp_timeout integer NOT NULL DEFAULT 60
        CHECK (desk_rtp_timeout BETWEEN 5 AND 600),
    ADD COLUMN desk_rtp_timeout_hold integer NOT NULL DEFAULT 600
        CHECK (desk_rtp_timeout_hold BETWEEN desk_rtp_timeout AND 3600);

-- Column list as in 0023 (CREATE OR REPLACE keeps the grants of the reader role); the new
-- columns go at the end.
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
