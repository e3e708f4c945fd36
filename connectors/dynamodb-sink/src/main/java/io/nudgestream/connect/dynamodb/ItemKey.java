package io.nudgestream.connect.dynamodb;

import java.util.Map;
import software.amazon.awssdk.services.dynamodb.model.AttributeValue;

/** The (partition, sort) key of one item, e.g. (customer_id, rule_id). */
public record ItemKey(String partition, String sort) {

    public ItemKey {
        if (partition == null || partition.isEmpty() || sort == null || sort.isEmpty()) {
            throw new IllegalArgumentException("both key parts must be non-empty");
        }
    }

    /**
     * Parses a record key "<partition><separator><sort>", splitting at the last separator so a partition
     * key may itself contain the separator (a sort key may not).
     */
    public static ItemKey parse(String recordKey, String separator) {
        if (recordKey == null) {
            throw new InvalidScoreRecordException("record has no key; expected <customer_id>" + separator
                + "<rule_id>");
        }
        int at = recordKey.lastIndexOf(separator);
        if (at <= 0 || at + separator.length() >= recordKey.length()) {
            throw new InvalidScoreRecordException("record key '" + abbreviate(recordKey)
                + "' is not <customer_id>" + separator + "<rule_id> with both parts non-empty");
        }
        return new ItemKey(recordKey.substring(0, at), recordKey.substring(at + separator.length()));
    }

    public String render(String separator) {
        return partition + separator + sort;
    }

    public Map<String, AttributeValue> toAttributes(String partitionField, String sortField) {
        return Map.of(
            partitionField, AttributeValue.fromS(partition),
            sortField, AttributeValue.fromS(sort));
    }

    static String abbreviate(String s) {
        return s.length() <= 200 ? s : s.substring(0, 200) + "…(" + s.length() + " chars)";
    }
}
