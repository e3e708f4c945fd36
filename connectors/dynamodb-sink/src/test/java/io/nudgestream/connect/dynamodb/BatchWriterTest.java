package io.nudgestream.connect.dynamodb;

import static io.nudgestream.connect.dynamodb.Fixtures.put;
import static io.nudgestream.connect.dynamodb.Fixtures.record;
import static io.nudgestream.connect.dynamodb.Fixtures.tombstone;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.errors.RetriableException;
import org.apache.kafka.connect.sink.SinkRecord;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import software.amazon.awssdk.core.exception.SdkClientException;

class BatchWriterTest {

    private final ScoreRecordMapper mapper = new ScoreRecordMapper("customer_id", "rule_id", "#");
    private final FakeDynamoDb db = new FakeDynamoDb();
    private final List<Long> sleeps = Collections.synchronizedList(new ArrayList<>());
    private BatchWriter writer = writer(1, 3);

    private BatchWriter writer(int inFlight, int retries) {
        return new BatchWriter(db, "insights", "customer_id", "rule_id", 25, inFlight, retries, 100, 1_000,
            sleeps::add);
    }

    @AfterEach
    void close() {
        writer.close();
    }

    private List<WriteOp> ops(SinkRecord... records) {
        List<WriteOp> ops = new ArrayList<>();
        for (SinkRecord r : records) {
            ops.add(mapper.map(r));
        }
        return ops;
    }

    @Test
    void keepsTheLastWritePerKeyTombstonesIncluded() {
        List<WriteOp> unique = BatchWriter.lastWritePerKey(ops(
            put("a", "r", "1", 0), put("b", "r", "1", 1), put("a", "r", "2", 2),
            put("c", "r", "1", 3), tombstone("c", "r", 4), tombstone("d", "r", 5), put("d", "r", "9", 6)));
        assertEquals(List.of(1L, 2L, 4L, 6L), unique.stream().map(op -> op.record().kafkaOffset()).toList());
    }

    @Test
    void writesOneItemPerKeyWithTheLastValue() {
        db.table.put(List.of("c", "r"), mapper.map(put("c", "r", "0", 0)).item());
        assertEquals(List.of(), writer.write(ops(
            put("a", "r", "1", 0), put("a", "r", "2", 1), put("b", "r", "5", 2), put("c", "r", "1", 3),
            tombstone("c", "r", 4))));
        assertEquals("2", db.score("a", "r"));
        assertEquals("5", db.score("b", "r"));
        assertNull(db.score("c", "r"));
        assertEquals(2, db.table.size());
        assertEquals(List.of(3), db.batchSizes);
    }

    @Test
    void splitsIntoBatchesOfTwentyFiveInParallel() {
        writer = writer(4, 3);
        List<SinkRecord> records = new ArrayList<>();
        for (int i = 0; i < 130; i++) {
            records.add(put("c" + (i % 60), "r", Integer.toString(i), i));
        }
        assertEquals(List.of(), writer.write(ops(records.toArray(SinkRecord[]::new))));
        assertEquals(60, db.table.size());
        assertEquals("129", db.score("c9", "r"));
        assertEquals("120", db.score("c0", "r"));
        List<Integer> sizes = new ArrayList<>(db.batchSizes);
        Collections.sort(sizes);
        assertEquals(List.of(10, 25, 25), sizes);
    }

    @Test
    void retriesUnprocessedItemsWithGrowingBackOff() {
        AtomicInteger calls = new AtomicInteger();
        db.hook = requests -> calls.incrementAndGet() <= 2 ? requests.subList(1, requests.size()) : List.of();
        writer.write(ops(put("a", "r", "1", 0), put("b", "r", "1", 1), put("c", "r", "1", 2)));
        assertEquals(List.of(3, 2, 1), db.batchSizes);
        assertEquals(3, db.table.size());
        assertEquals(2, sleeps.size());
        assertTrue(sleeps.get(0) >= 50 && sleeps.get(0) <= 100, sleeps.toString());
        assertTrue(sleeps.get(1) >= 100 && sleeps.get(1) <= 200, sleeps.toString());
    }

    @Test
    void backOffDoublesUpToItsCeiling() {
        for (int attempt = 0; attempt < 40; attempt++) {
            long ceiling = Math.min(1_000, 100L << Math.min(attempt, 30));
            long delay = writer.backoffDelay(attempt);
            assertTrue(delay >= ceiling / 2 && delay <= ceiling, attempt + ": " + delay);
        }
    }

    @Test
    void retriesThrottlingAndNetworkErrorsThenGivesUpRetriably() {
        AtomicInteger calls = new AtomicInteger();
        db.hook = requests -> {
            int n = calls.incrementAndGet();
            if (n == 1) {
                throw FakeDynamoDb.error(400, "ProvisionedThroughputExceededException");
            }
            if (n == 2) {
                throw SdkClientException.create("Connection refused");
            }
            return List.of();
        };
        writer.write(ops(put("a", "r", "1", 0)));
        assertEquals("1", db.score("a", "r"));
        assertEquals(2, sleeps.size());

        db.hook = requests -> {
            throw FakeDynamoDb.error(503, "ServiceUnavailable");
        };
        var e = assertThrows(RetriableException.class, () -> writer.write(ops(put("b", "r", "1", 1))));
        assertTrue(e.getMessage().contains("still failing after 3 retries"), e.getMessage());
        assertEquals(5, sleeps.size());
    }

    @Test
    void aBatchDynamoDbRejectsIsRewrittenOneByOneAndOnlyTheBadRecordIsRejected() {
        SinkRecord bad = record("b#r", "{\"customer_id\":\"b\",\"rule_id\":\"r\",\"score\":\"invalid\"}", 1);
        List<BatchWriter.Rejected> rejected = writer.write(ops(put("a", "r", "1", 0), bad, tombstone("c", "r", 2)));
        assertEquals(1, rejected.size());
        assertEquals(bad, rejected.get(0).record());
        assertTrue(rejected.get(0).reason() instanceof InvalidScoreRecordException);
        assertTrue(rejected.get(0).reason().getMessage().contains("DynamoDB rejected the put of b/r"),
            rejected.get(0).reason().getMessage());
        assertEquals("1", db.score("a", "r"));
        assertEquals(List.of("put a/r", "put b/r", "delete c/r"), db.singleCalls);
    }

    @Test
    void credentialErrorsFailTheTask() {
        db.hook = requests -> {
            throw FakeDynamoDb.error(400, "UnrecognizedClientException");
        };
        var e = assertThrows(ConnectException.class, () -> writer.write(ops(put("a", "r", "1", 0))));
        assertTrue(!(e instanceof RetriableException) && e.getMessage().contains("credentials"), e.getMessage());
    }

    @Test
    void aFatalErrorOutranksARetriableOneAcrossParallelBatches() {
        writer = writer(4, 0);
        db.hook = requests -> {
            throw FakeDynamoDb.error(requests.size() == 25 ? 500 : 403, requests.size() == 25
                ? "InternalServerError" : "AccessDeniedException");
        };
        List<SinkRecord> records = new ArrayList<>();
        for (int i = 0; i < 30; i++) {
            records.add(put("c" + i, "r", "1", i));
        }
        var e = assertThrows(ConnectException.class, () -> writer.write(ops(records.toArray(SinkRecord[]::new))));
        assertTrue(!(e instanceof RetriableException), e.toString());
    }
}
