package io.nudgestream.connect.dynamodb;

import static io.nudgestream.connect.dynamodb.Fixtures.put;
import static io.nudgestream.connect.dynamodb.Fixtures.record;
import static io.nudgestream.connect.dynamodb.Fixtures.tombstone;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Future;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.errors.RetriableException;
import org.apache.kafka.connect.sink.ErrantRecordReporter;
import org.apache.kafka.connect.sink.SinkRecord;
import org.junit.jupiter.api.Test;

class DynamoDbSinkTaskTest {

    private final FakeDynamoDb db = new FakeDynamoDb();
    private final List<SinkRecord> reported = new ArrayList<>();
    private final List<Throwable> reasons = new ArrayList<>();
    private final ErrantRecordReporter reporter = new ErrantRecordReporter() {
        @Override
        public Future<Void> report(SinkRecord record, Throwable error) {
            reported.add(record);
            reasons.add(error);
            return CompletableFuture.completedFuture(null);
        }
    };

    private static DynamoDbSinkConfig config(Map<String, String> extra) {
        Map<String, String> props = new HashMap<>(Map.of("dynamodb.endpoint", "http://127.0.0.1:1",
            "max.retries", "1", "retry.backoff.ms", "1", "retry.backoff.max.ms", "2"));
        props.putAll(extra);
        return new DynamoDbSinkConfig(props);
    }

    private DynamoDbSinkTask task(ErrantRecordReporter reporter) {
        DynamoDbSinkTask task = new DynamoDbSinkTask();
        task.start(config(Map.of()), db, reporter);
        return task;
    }

    @Test
    void writesGoodRecordsAndReportsTheOthersThenCarriesOn() {
        DynamoDbSinkTask task = task(reporter);
        SinkRecord badJson = record("x#r", "{nope", 3);
        SinkRecord mismatch = record("y#r", Fixtures.score("z", "r", "1"), 4);
        SinkRecord invalidForDynamo = record("w#r", "{\"customer_id\":\"w\",\"rule_id\":\"r\",\"score\":\"invalid\"}", 5);
        task.put(List.of(put("a", "r", "1", 0), badJson, put("a", "r", "2", 1), mismatch, invalidForDynamo,
            put("b", "r", "7", 2)));
        assertEquals("2", db.score("a", "r"));
        assertEquals("7", db.score("b", "r"));
        assertEquals(List.of(badJson, mismatch, invalidForDynamo), reported);
        assertTrue(reasons.get(0).getMessage().startsWith("value is not valid JSON"), reasons.get(0).getMessage());
        assertTrue(reasons.get(1).getMessage().contains("does not match"), reasons.get(1).getMessage());

        task.put(List.of(tombstone("a", "r", 6)));
        assertNull(db.score("a", "r"));
        assertEquals(3, reported.size());
        task.stop();
    }

    @Test
    void aRetriableFailureReportsNothingSoRedeliveryReportsOnce() {
        DynamoDbSinkTask task = task(reporter);
        db.hook = requests -> {
            throw FakeDynamoDb.error(500, "InternalServerError");
        };
        List<SinkRecord> batch = List.of(record("x#r", "{nope", 0), put("a", "r", "1", 1));
        assertThrows(RetriableException.class, () -> task.put(batch));
        assertEquals(List.of(), reported);
        db.hook = requests -> List.of();
        task.put(batch);
        assertEquals(1, reported.size());
        assertEquals("1", db.score("a", "r"));
    }

    @Test
    void withoutADeadLetterTopicAnInvalidRecordFailsTheTaskNamingIt() {
        DynamoDbSinkTask task = task(null);
        var e = assertThrows(ConnectException.class, () -> task.put(List.of(record("x#r", "{nope", 41))));
        assertTrue(e.getMessage().contains("scores-0@41") && e.getMessage().contains("errors.tolerance=all"),
            e.getMessage());
    }

    @Test
    void validatesItsConfig() {
        assertThrows(ConfigException.class, () -> config(Map.of("batch.size", "26")));
        assertThrows(ConfigException.class, () -> config(Map.of("aws.access.key.id", "only-the-id")));
        assertThrows(ConfigException.class, () -> config(Map.of("retry.backoff.ms", "500")));
        DynamoDbSinkConfig defaults = new DynamoDbSinkConfig(Map.of());
        assertEquals("insights", defaults.table());
        assertEquals("", defaults.endpoint());
        assertNull(defaults.staticCredentials());
        assertEquals(25, defaults.batchSize());
    }

    @Test
    void theConnectorHandsEveryTaskTheSameConfig() {
        DynamoDbSinkConnector connector = new DynamoDbSinkConnector();
        connector.start(Map.of("dynamodb.table", "t"));
        List<Map<String, String>> configs = connector.taskConfigs(3);
        assertEquals(3, configs.size());
        assertEquals(Map.of("dynamodb.table", "t"), configs.get(2));
        assertEquals(DynamoDbSinkTask.class, connector.taskClass());
        assertThrows(ConfigException.class, () -> new DynamoDbSinkConnector().start(Map.of("batch.size", "0")));
    }
}
