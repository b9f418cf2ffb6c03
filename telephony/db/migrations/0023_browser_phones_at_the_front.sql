-- On a cluster node (phone_site.front_contact set, 0022) browser softphones register at the
-- front too, over its WebSocket (kamailio-conf/kamailio.cfg), not with one node: every node
-- reaches each browser through the front, which relays over the browser's own connection, so
-- either node rings any operator and a dead node takes no browser with it. Only the
-- signalling goes through the front; the media (DTLS-SRTP, ICE) stays between the browser and
-- the node, so such an endpoint stays a WebRTC one (webrtc = yes) and differs in two ways:
-- - transport-udp: the node sends its INVITE to the front over UDP (the AOR's contact), and
--   Asterisk binds the call's RTP to that transport's address, the node's own SIP address
--   (res_pjsip_sdp_rtp's create_rtp), where the browser's ICE checks reach it;
-- - no media_address: phone_site holds one address for every node (the views are shared by
--   all of them), and each node's media lives on its own.
-- And every phone behind the front, browser or desk, gets no rewrite_contact: its replies come
-- from the front, and Asterisk would take the front's address for the phone's Contact (there
-- is no Record-Route on a desk phone's call), sending its BYE to the front as a request for
-- the front itself, which refuses it (404): the phone would never hear the caller hang up. A
-- browser's call is record-routed at the front, which reaches it over its WebSocket.
-- Without a front nothing changes: the browser registers with the node over its WebSocket.
-- Column lists as in 0012/0022 (CREATE OR REPLACE keeps the grants of the reader role).
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
                THEN 'yes' END::text AS bind_rtp_to_media_address
    FROM phone_secrets CROSS JOIN phone_site site;

-- Every phone of a cluster node, browser or desk, is rung through the front.
CREATE OR REPLACE VIEW ps_aors AS
    SELECT substr(operator, 7) AS id, '1'::text AS max_contacts,
           'yes'::text AS remove_existing,
           CASE kind WHEN 'browser' THEN '5' ELSE '30' END::text AS qualify_frequency,
           CASE WHEN site.front_contact IS NOT NULL
                THEN 'sip:' || substr(operator, 7) || '@' || site.front_contact END::text
               AS contact
    FROM phone_secrets CROSS JOIN phone_site site;
