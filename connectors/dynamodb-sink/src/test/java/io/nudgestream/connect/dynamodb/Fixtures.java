package io.nudgestream.connect.dynamodb;

import java.nio.charset.StandardCharsets;
import org.apache.kafka.connect.sink.SinkRecord;

final class Fixtures {
    private Fixtures() {}

    static String score(String customer, String rule, String score) {
        return "{\"customer_id\":\"" + customer + "\",\"rule_id\":\"" + rule + "\",\"rule_version\":3,"
            + "\"score\":" + score + ",\"reasons\":[\"r\"],\"evaluated_at\":\"2026-11-25T01:00:00Z\","
            + "\"sweep_id\":\"s-1\"}";
    }

    static SinkRecord record(Object key, Object value, long offset) {
        return new SinkRecord("scores", 0, null, key, null, value, offset);
    }

    static SinkRecord put(String customer, String rule, String score, long offset) {
        return record(customer + "#" + rule, score(customer, rule, score).getBytes(StandardCharsets.UTF_8), offset);
    }

    static SinkRecord tombstone(String customer, String rule, long offset) {
        return record(customer + "#" + rule, null, offset);
    }
}
