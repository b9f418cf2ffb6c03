-- A browser phone that dies mid-call (the browser crashed or was killed, the laptop slept, its
-- network went) sends no BYE: its WebSocket closing ends no call (a call outlives a lost
-- WebSocket on purpose, its media going straight to Asterisk), so the caller sat in silence
-- on a dead call until they gave up themselves, and the call read as ended normally. Asterisk
-- hangs up a channel that receives nothing for rtp_timeout seconds (rtp_timeout_hold while
-- held) with cause 44 "Requested channel not available" (res_pjsip_sdp_rtp's
-- rtp_check_timeout); the bridge hands that cause to the caller's channel as it dissolves, so
-- the call ends as any call whose operator's leg dropped does: a network cause, and the
-- caller on the call-back list ("Terputus saat bicara"); an answered call-back so ended is cut
-- short and its caller stays on the list.
--
-- Anything the browser sends counts, not only its voice: Asterisk resets the clock on every
-- packet it reads on the media port, RTCP, DTLS and ICE's STUN checks included, and a live
-- browser sends STUN consent checks every few seconds all call long (RFC 7675). So an
-- operator who holds or mutes is never cut, and rtp_timeout_hold is the same value: a
-- browser that dies while its caller listens to the hold music is noticed as soon.
--
-- The value is the site's softphone_rtp_timeout_seconds, written by the line at every start
-- beside the media address (one value for every node: the views are shared). Its default is
-- the setting's: a database migrated after the line's start (it was down then, and the line
-- migrates it once it is back) has the timeout too. Desk phones keep none: a SIP phone
-- without ICE may send nothing while held.
ALTER TABLE phone_site ADD COLUMN browser_rtp_timeout integer NOT NULL DEFAULT 30
    CHECK (browser_rtp_timeout BETWEEN 5 AND 600);

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
           CASE kind WHEN 'browser' THEN site.browser_rtp_timeout END::text AS rtp_timeout,
           CASE kind WHEN 'browser' THEN site.browser_rtp_timeout END::text AS rtp_timeout_hold
    FROM phone_secrets CROSS JOIN phone_site site;
