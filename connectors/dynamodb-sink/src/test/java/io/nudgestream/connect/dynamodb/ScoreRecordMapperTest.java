package io.nudgestream.connect.dynamodb;

import static io.nudgestream.connect.dynamodb.Fixtures.record;
import static io.nudgestream.connect.dynamodb.Fixtures.score;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import org.junit.jupiter.api.Test;
import software.amazon.awssdk.services.dynamodb.model.AttributeValue;

class ScoreRecordMapperTest {

    private final ScoreRecordMapper mapper = new ScoreRecordMapper("customer_id", "rule_id", "#");

    @Test
    void aJsonValueIsTheWholeItem() {
        for (Object value : new Object[] {score("c-1", "r-1", "0.75"),
                score("c-1", "r-1", "0.75").getBytes(StandardCharsets.UTF_8),
                ByteBuffer.wrap(score("c-1", "r-1", "0.75").getBytes(StandardCharsets.UTF_8))}) {
            WriteOp op = mapper.map(record("c-1#r-1", value, 7));
            assertEquals(new ItemKey("c-1", "r-1"), op.key());
            assertEquals("0.75", op.item().get("score").n());
            assertEquals(AttributeValue.fromS("c-1"), op.item().get("customer_id"));
            assertEquals("3", op.item().get("rule_version").n());
            assertEquals(7, op.record().kafkaOffset());
            assertTrue(op.toWriteRequest().putRequest() != null);
        }
    }

    @Test
    void aTombstoneDeletesTheKeyOfTheRecordKey() {
        WriteOp op = mapper.map(record("c-1#r-1".getBytes(StandardCharsets.UTF_8), null, 8));
        assertTrue(op.isDelete());
        assertNull(op.item());
        assertEquals(Map.of("customer_id", AttributeValue.fromS("c-1"), "rule_id", AttributeValue.fromS("r-1")),
            op.toWriteRequest().deleteRequest().key());
    }

    @Test
    void rejectsKeyAndValueThatDisagree() {
        assertMessage("record key 'c-2#r-1' does not match the value's customer_id#rule_id 'c-1#r-1'",
            "c-2#r-1", score("c-1", "r-1", "1"));
        assertMessage("record has no key; expected 'c-1#r-1'", null, score("c-1", "r-1", "1"));
    }

    @Test
    void rejectsValuesWithoutUsableKeyFields() {
        assertMessage("value has no customer_id", "c#r", "{\"rule_id\":\"r\"}");
        assertMessage("value has no rule_id", "c#r", "{\"customer_id\":\"c\",\"rule_id\":null}");
        assertMessage("customer_id must be a string", "1#r", "{\"customer_id\":1,\"rule_id\":\"r\"}");
        assertMessage("rule_id is empty", "c#", "{\"customer_id\":\"c\",\"rule_id\":\"\"}");
        assertMessage("contains the key separator", "c#a#b", "{\"customer_id\":\"c\",\"rule_id\":\"a#b\"}");
        assertMessage("not valid JSON", "c#r", "{oops");
    }

    @Test
    void rejectsTombstonesWithUnparsableKeysAndUnsupportedTypes() {
        assertMessage("is not <customer_id>#<rule_id>", "no-separator", null);
        assertMessage("record has no key", null, null);
        assertMessage("use StringConverter or ByteArrayConverter as value.converter", "c#r", Map.of("a", 1));
        assertMessage("use StringConverter or ByteArrayConverter as key.converter", 42L, null);
        assertMessage("record key is not valid UTF-8", new byte[] {(byte) 0xFF, '#', 'r'}, null);
    }

    private void assertMessage(String expected, Object key, Object value) {
        var e = assertThrows(InvalidScoreRecordException.class, () -> mapper.map(record(key, value, 0)));
        assertTrue(e.getMessage().contains(expected), () -> "'" + e.getMessage() + "' lacks '" + expected + "'");
    }
}
