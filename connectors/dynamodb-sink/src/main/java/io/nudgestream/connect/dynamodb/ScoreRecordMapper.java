package io.nudgestream.connect.dynamodb;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import org.apache.kafka.connect.sink.SinkRecord;
import software.amazon.awssdk.services.dynamodb.model.AttributeValue;

/**
 * Maps a `scores` record to the write it means: a JSON value is the whole item (put, overwriting), a null
 * value (tombstone) deletes the item whose key is the record key "customer_id#rule_id".
 *
 * <p>Keys and values are taken schemaless, as String (StringConverter) or bytes (ByteArrayConverter).
 * Anything that cannot be written is an {@link InvalidScoreRecordException} naming the reason.
 */
public final class ScoreRecordMapper {

    private final String partitionField;
    private final String sortField;
    private final String separator;

    public ScoreRecordMapper(String partitionField, String sortField, String separator) {
        this.partitionField = partitionField;
        this.sortField = sortField;
        this.separator = separator;
    }

    public static ScoreRecordMapper from(DynamoDbSinkConfig config) {
        return new ScoreRecordMapper(config.partitionKeyField(), config.sortKeyField(), config.keySeparator());
    }

    public WriteOp map(SinkRecord record) {
        String recordKey = keyText(record.key());
        Object value = record.value();
        if (value == null) {
            ItemKey key = ItemKey.parse(recordKey, separator);
            return new WriteOp(key, key.toAttributes(partitionField, sortField), null, record);
        }
        Map<String, AttributeValue> item = parseValue(value);
        ItemKey key = new ItemKey(
            keyField(item, partitionField),
            keyField(item, sortField));
        if (recordKey == null) {
            throw new InvalidScoreRecordException("record has no key; expected '" + key.render(separator) + "'");
        }
        if (!recordKey.equals(key.render(separator))) {
            throw new InvalidScoreRecordException("record key '" + ItemKey.abbreviate(recordKey)
                + "' does not match the value's " + partitionField + separator + sortField + " '"
                + ItemKey.abbreviate(key.render(separator)) + "'");
        }
        return new WriteOp(key, key.toAttributes(partitionField, sortField), item, record);
    }

    private static Map<String, AttributeValue> parseValue(Object value) {
        if (value instanceof String s) {
            return JsonAttributes.parseObject(s);
        }
        if (value instanceof byte[] bytes) {
            return JsonAttributes.parseObject(bytes);
        }
        if (value instanceof ByteBuffer buffer) {
            byte[] bytes = new byte[buffer.remaining()];
            buffer.duplicate().get(bytes);
            return JsonAttributes.parseObject(bytes);
        }
        throw new InvalidScoreRecordException("value is a " + value.getClass().getName()
            + "; the sink expects JSON text: use StringConverter or ByteArrayConverter as value.converter");
    }

    private String keyField(Map<String, AttributeValue> item, String field) {
        AttributeValue v = item.get(field);
        if (v == null || Boolean.TRUE.equals(v.nul())) {
            throw new InvalidScoreRecordException("value has no " + field + " (the table's key)");
        }
        if (v.s() == null) {
            throw new InvalidScoreRecordException("value's " + field + " must be a string (the table's key)");
        }
        if (v.s().isEmpty()) {
            throw new InvalidScoreRecordException("value's " + field + " is empty; DynamoDB keys must be non-empty");
        }
        if (field.equals(sortField) && v.s().contains(separator)) {
            throw new InvalidScoreRecordException("value's " + field + " '" + ItemKey.abbreviate(v.s())
                + "' contains the key separator '" + separator + "', so its tombstone could not be parsed");
        }
        return v.s();
    }

    static String keyText(Object key) {
        if (key == null) {
            return null;
        }
        if (key instanceof String s) {
            return s;
        }
        ByteBuffer bytes;
        if (key instanceof byte[] b) {
            bytes = ByteBuffer.wrap(b);
        } else if (key instanceof ByteBuffer b) {
            bytes = b.duplicate();
        } else {
            throw new InvalidScoreRecordException("record key is a " + key.getClass().getName()
                + "; the sink expects text: use StringConverter or ByteArrayConverter as key.converter");
        }
        try {
            return StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT)
                .decode(bytes)
                .toString();
        } catch (CharacterCodingException e) {
            throw new InvalidScoreRecordException("record key is not valid UTF-8", e);
        }
    }
}
