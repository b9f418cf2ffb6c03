-- Registering operator phones: one digest secret per phone (operator interface), kept only
-- as Asterisk needs it, MD5(username:realm:secret) (the secret itself is shown once to the
-- admin and never stored). Asterisk reads the three ps_* views through PJSIP realtime
-- (asterisk-conf/sorcery.conf) as a role that may only SELECT them (granted by the line at
-- start, telephony/desks/store.py: the role and its password are the site's, not a
-- migration's). Views run with their owner's rights, so that role never sees a table.
-- SQL for these lives in telephony/desks/store.py.

CREATE TABLE phone_secrets (
    operator  text PRIMARY KEY REFERENCES operators (operator) ON DELETE CASCADE
              CHECK (operator ~ '^PJSIP/[A-Za-z0-9_.-]{1,64}$'),
    realm     text NOT NULL,
    md5_cred  text NOT NULL CHECK (md5_cred ~ '^[0-9a-f]{32}$'),
    set_at    timestamptz NOT NULL DEFAULT now()
);

-- What asterisk-conf/pjsip.conf's [operator] template says, for phones that register; plus
-- NAT handling, since a desk phone may sit behind another router than Asterisk.
CREATE VIEW ps_endpoints AS
    SELECT substr(operator, 7) AS id, 'transport-udp'::text AS transport,
           'operators'::text AS context, 'all'::text AS disallow, 'alaw,ulaw'::text AS allow,
           'no'::text AS direct_media, 'rfc4733'::text AS dtmf_mode,
           substr(operator, 7) AS auth, substr(operator, 7) AS aors,
           'yes'::text AS rtp_symmetric, 'yes'::text AS force_rport,
           'yes'::text AS rewrite_contact
    FROM phone_secrets;

CREATE VIEW ps_auths AS
    SELECT substr(operator, 7) AS id, 'digest'::text AS auth_type,
           substr(operator, 7) AS username, realm,
           'MD5:' || md5_cred AS password_digest
    FROM phone_secrets;

-- One registration per phone, a new one replacing the old (a phone rebooted behind NAT);
-- qualified every 30 s so the queue does not ring a phone that is gone. No static contact:
-- the column is there because Asterisk asks at start for AORs that have one.
CREATE VIEW ps_aors AS
    SELECT substr(operator, 7) AS id, '1'::text AS max_contacts,
           'yes'::text AS remove_existing, '30'::text AS qualify_frequency,
           NULL::text AS contact
    FROM phone_secrets;
