-- One wide table for web, product, API and Web3 events (see README "Event store").
-- Sorting key starts with the project: a tenant's query reads only its own granules.
-- ReplacingMergeTree keyed on the message id: a retried delivery collapses to one row;
-- queries read with FINAL so it counts once even before the background merge.
CREATE TABLE IF NOT EXISTS events
(
    project_id        UUID,
    event_id          UUID,
    message_id        String,
    type              LowCardinality(String),
    event             LowCardinality(String),
    timestamp         DateTime64(3, 'UTC'),
    received_at       DateTime64(3, 'UTC'),
    distinct_id       String,
    user_id           String,
    anonymous_id      String,
    session_id        String,

    url               String,
    host              LowCardinality(String),
    path              String,
    title             String,
    referrer          String,
    referrer_domain   LowCardinality(String),
    utm_source        LowCardinality(String),
    utm_medium        LowCardinality(String),
    utm_campaign      LowCardinality(String),
    utm_term          String,
    utm_content       String,
    click_id          String,

    browser           LowCardinality(String),
    browser_version   LowCardinality(String),
    os                LowCardinality(String),
    os_version        LowCardinality(String),
    device_type       LowCardinality(String),
    is_bot            UInt8,
    locale            LowCardinality(String),
    screen_width      UInt16,
    screen_height     UInt16,
    country           LowCardinality(String),
    region            LowCardinality(String),
    city              LowCardinality(String),
    ip_hash           String,
    ip                String,
    library           LowCardinality(String),
    library_version   LowCardinality(String),

    http_method       LowCardinality(String),
    http_route        LowCardinality(String),
    http_status       UInt16,
    duration_ms       Float64,
    request_bytes     UInt64,
    response_bytes    UInt64,

    chain_id          UInt64,
    wallet_address    String,
    contract_address  String,
    tx_hash           String,
    tx_value          UInt256,
    token_symbol      LowCardinality(String),
    tx_status         LowCardinality(String),

    properties        String CODEC(ZSTD(3)),

    INDEX idx_message_id message_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_distinct_id distinct_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = {replacing_engine}(received_at)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project_id, toDate(timestamp), event, cityHash64(message_id))
SETTINGS index_granularity = 8192;

-- identify/alias: which person a distinct id belongs to (latest mapping wins).
CREATE TABLE IF NOT EXISTS person_aliases
(
    project_id   UUID,
    distinct_id  String,
    person_id    String,
    updated_at   DateTime64(3, 'UTC')
)
ENGINE = {replacing_engine}(updated_at)
ORDER BY (project_id, distinct_id);
