-- Billing (issue 13). A tenant without a row here is on the trial that
-- began at tenants.created_at: sign-up and `tenant create` need no billing
-- code. Written by webhooks and owners' billing actions only: rare writes,
-- as a reference table on Citus must have.
CREATE TABLE public.subscriptions (
    tenant_id                bigint NOT NULL,
    -- The configured plan's name (`billing.plans`), or 'trial'.
    plan                     text NOT NULL,
    state                    text NOT NULL,
    razorpay_subscription_id text,
    trial_ends_at            timestamptz,
    current_period_end       timestamptz,
    -- When the subscription was halted, paused, cancelled or completed:
    -- grace counts from here.
    halted_since             timestamptz,
    cancel_at_cycle_end      boolean NOT NULL DEFAULT false,
    -- The newest Razorpay event applied: its created_at and the
    -- subscription's paid_count then. An older event changes nothing.
    last_event_at            timestamptz,
    last_paid_count          integer NOT NULL DEFAULT 0,
    updated_at               timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT subscriptions_pkey PRIMARY KEY (tenant_id),
    CONSTRAINT subscriptions_tenant_fkey FOREIGN KEY (tenant_id)
        REFERENCES public.tenants (id) ON DELETE CASCADE,
    CONSTRAINT subscriptions_razorpay_id_key UNIQUE (razorpay_subscription_id),
    CONSTRAINT subscriptions_state_check CHECK (state IN ('created', 'authenticated',
        'active', 'pending', 'halted', 'cancelled', 'completed', 'paused', 'granted')),
    CONSTRAINT subscriptions_plan_check CHECK (length(plan) BETWEEN 1 AND 100)
);

-- Razorpay webhook deliveries already handled (x-razorpay-event-id): a
-- redelivery is answered 200 and changes nothing.
CREATE TABLE public.billing_events (
    event_id    text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT billing_events_pkey PRIMARY KEY (event_id),
    CONSTRAINT billing_events_id_check CHECK (length(event_id) BETWEEN 1 AND 100)
);
