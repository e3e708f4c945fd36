package io.nudgestream.connect.dynamodb;

import java.util.Map;
import org.apache.kafka.common.config.AbstractConfig;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.ConfigDef.Importance;
import org.apache.kafka.common.config.ConfigDef.Range;
import org.apache.kafka.common.config.ConfigDef.Type;
import org.apache.kafka.common.config.types.Password;

/** Every setting of the sink, validated by Connect before a task starts. */
public final class DynamoDbSinkConfig extends AbstractConfig {

    public static final String TABLE = "dynamodb.table";
    public static final String ENDPOINT = "dynamodb.endpoint";
    public static final String REGION = "aws.region";
    public static final String ACCESS_KEY_ID = "aws.access.key.id";
    public static final String SECRET_ACCESS_KEY = "aws.secret.access.key";
    public static final String PARTITION_KEY_FIELD = "key.partition.field";
    public static final String SORT_KEY_FIELD = "key.sort.field";
    public static final String KEY_SEPARATOR = "key.separator";
    public static final String BATCH_SIZE = "batch.size";
    public static final String MAX_IN_FLIGHT = "max.in.flight.requests";
    public static final String MAX_RETRIES = "max.retries";
    public static final String RETRY_BACKOFF_MS = "retry.backoff.ms";
    public static final String RETRY_BACKOFF_MAX_MS = "retry.backoff.max.ms";
    public static final String REQUEST_TIMEOUT_MS = "request.timeout.ms";

    /** DynamoDB's own cap on the requests of one BatchWriteItem call. */
    public static final int DYNAMODB_MAX_BATCH = 25;

    public static final ConfigDef CONFIG_DEF = new ConfigDef()
        .define(TABLE, Type.STRING, "insights", new ConfigDef.NonEmptyString(), Importance.HIGH,
            "DynamoDB table the records are written to.")
        .define(ENDPOINT, Type.STRING, "", Importance.HIGH,
            "Endpoint override (a local DynamoDB such as moto). Empty: the AWS endpoint of the region.")
        .define(REGION, Type.STRING, "eu-west-2", new ConfigDef.NonEmptyString(), Importance.HIGH,
            "AWS region of the table.")
        .define(ACCESS_KEY_ID, Type.PASSWORD, null, Importance.MEDIUM,
            "Static access key id. Unset: the AWS SDK's default credential chain (environment, "
                + "profile, container or instance role).")
        .define(SECRET_ACCESS_KEY, Type.PASSWORD, null, Importance.MEDIUM,
            "Static secret access key; set together with " + ACCESS_KEY_ID + ".")
        .define(PARTITION_KEY_FIELD, Type.STRING, "customer_id", new ConfigDef.NonEmptyString(),
            Importance.MEDIUM, "Value field (string) that is the table's partition key.")
        .define(SORT_KEY_FIELD, Type.STRING, "rule_id", new ConfigDef.NonEmptyString(), Importance.MEDIUM,
            "Value field (string) that is the table's sort key.")
        .define(KEY_SEPARATOR, Type.STRING, "#", new ConfigDef.NonEmptyString(), Importance.MEDIUM,
            "Separator of the record key <partition><separator><sort>; the key is split at its last "
                + "occurrence, so the sort key must not contain it.")
        .define(BATCH_SIZE, Type.INT, DYNAMODB_MAX_BATCH, Range.between(1, DYNAMODB_MAX_BATCH),
            Importance.MEDIUM, "Write requests per BatchWriteItem call (DynamoDB allows at most 25).")
        .define(MAX_IN_FLIGHT, Type.INT, 4, Range.between(1, 64), Importance.LOW,
            "BatchWriteItem calls a task runs in parallel (they always touch disjoint keys).")
        .define(MAX_RETRIES, Type.INT, 8, Range.atLeast(0), Importance.MEDIUM,
            "Retries of one batch (unprocessed items, throttling, 5xx, network errors) inside one put(); "
                + "after them the task raises a RetriableException and Connect redelivers the records.")
        .define(RETRY_BACKOFF_MS, Type.LONG, 100L, Range.atLeast(1L), Importance.MEDIUM,
            "First back-off; it doubles on each retry (with full jitter) up to " + RETRY_BACKOFF_MAX_MS + ".")
        .define(RETRY_BACKOFF_MAX_MS, Type.LONG, 10_000L, Range.atLeast(1L), Importance.LOW,
            "Longest back-off between two retries.")
        .define(REQUEST_TIMEOUT_MS, Type.LONG, 30_000L, Range.atLeast(100L), Importance.LOW,
            "Timeout of one DynamoDB API call.");

    public DynamoDbSinkConfig(Map<String, String> props) {
        super(CONFIG_DEF, props);
        Password id = getPassword(ACCESS_KEY_ID);
        Password secret = getPassword(SECRET_ACCESS_KEY);
        if ((id == null) != (secret == null)) {
            throw new org.apache.kafka.common.config.ConfigException(
                ACCESS_KEY_ID + " and " + SECRET_ACCESS_KEY + " must be set together");
        }
        if (getLong(RETRY_BACKOFF_MAX_MS) < getLong(RETRY_BACKOFF_MS)) {
            throw new org.apache.kafka.common.config.ConfigException(
                RETRY_BACKOFF_MAX_MS + " must be at least " + RETRY_BACKOFF_MS);
        }
    }

    public String table() { return getString(TABLE); }
    public String endpoint() { return getString(ENDPOINT).trim(); }
    public String region() { return getString(REGION); }
    public String partitionKeyField() { return getString(PARTITION_KEY_FIELD); }
    public String sortKeyField() { return getString(SORT_KEY_FIELD); }
    public String keySeparator() { return getString(KEY_SEPARATOR); }
    public int batchSize() { return getInt(BATCH_SIZE); }
    public int maxInFlight() { return getInt(MAX_IN_FLIGHT); }
    public int maxRetries() { return getInt(MAX_RETRIES); }
    public long retryBackoffMs() { return getLong(RETRY_BACKOFF_MS); }
    public long retryBackoffMaxMs() { return getLong(RETRY_BACKOFF_MAX_MS); }
    public long requestTimeoutMs() { return getLong(REQUEST_TIMEOUT_MS); }

    /** The static key pair, or null when the default credential chain is to be used. */
    public String[] staticCredentials() {
        Password id = getPassword(ACCESS_KEY_ID);
        Password secret = getPassword(SECRET_ACCESS_KEY);
        return id == null ? null : new String[] {id.value(), secret.value()};
    }
}
