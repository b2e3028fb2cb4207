-- Requests an expert refused in bulk (at closing time), each with the appointment offered.
CREATE TABLE appointment_proposals (
    id             bigserial PRIMARY KEY,
    request_id     bigint NOT NULL UNIQUE REFERENCES requests (id),
    expert_id      bigint NOT NULL REFERENCES experts (id),
    client_id      bigint NOT NULL REFERENCES clients (id),
    proposed_start timestamptz,          -- NULL: the expert has no opening in sight
    created_at     timestamptz NOT NULL DEFAULT now()
);
