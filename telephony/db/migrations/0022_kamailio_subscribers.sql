-- The SIP front of a cluster (kamailio-conf/kamailio.cfg) authenticates registering operator
-- phones with the same digest the Asterisk nodes use, MD5(username:realm:secret), read through
-- this view by the same read-only role as the ps_* views (granted by the line at start,
-- telephony/desks/store.py), under the column names Kamailio's auth_db asks for.
CREATE VIEW kamailio_subscribers AS
    SELECT substr(operator, 7) AS username, realm AS domain, md5_cred AS ha1
    FROM phone_secrets;

-- On a cluster node the desk phones register at the front, not at the node: the node reaches
-- each through the front (which relays to wherever it registered), so either node rings any
-- operator. front_contact is the front's host:port, written by the line at every start from
-- its kamailio_* settings (NULL: no front, phones register with the node as before). Browser
-- phones still register with a node over its WebSocket.
ALTER TABLE phone_site ADD COLUMN front_contact text
    CHECK (front_contact ~ '^[A-Za-z0-9.:\[\]-]{1,255}$');

CREATE OR REPLACE VIEW ps_aors AS
    SELECT substr(operator, 7) AS id, '1'::text AS max_contacts,
           'yes'::text AS remove_existing,
           CASE kind WHEN 'browser' THEN '5' ELSE '30' END::text AS qualify_frequency,
           CASE WHEN kind <> 'browser' AND site.front_contact IS NOT NULL
                THEN 'sip:' || substr(operator, 7) || '@' || site.front_contact END::text
               AS contact
    FROM phone_secrets CROSS JOIN phone_site site;
