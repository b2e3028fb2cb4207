-- Guessing the phone menu's PIN gets slower and slower: each lockout of a key (an expert, a
-- calling number) is longer than the one before, and the counts start again only after a
-- quiet period without a wrong PIN (domain/pin.py, PinThrottle).
ALTER TABLE pin_failures ADD COLUMN lockouts integer NOT NULL DEFAULT 0;
ALTER TABLE pin_failures ADD COLUMN last_failure_at timestamptz;
UPDATE pin_failures SET last_failure_at = updated_at WHERE failures > 0 OR locked_until IS NOT NULL;

-- New PINs have at least 6 digits; older ones (4 or 5) keep working, and the panel asks the
-- expert to change theirs. NULL: set before this column, its length not known until the
-- expert next types it at the phone menu.
ALTER TABLE experts ADD COLUMN pin_digits smallint;

-- Names end up in email headers: line breaks and other control characters typed before
-- they were refused at input become spaces.
UPDATE experts SET alias = regexp_replace(alias, '[[:cntrl:]]', ' ', 'g')
    WHERE alias ~ '[[:cntrl:]]';
UPDATE clients SET alias = regexp_replace(alias, '[[:cntrl:]]', ' ', 'g')
    WHERE alias ~ '[[:cntrl:]]';
