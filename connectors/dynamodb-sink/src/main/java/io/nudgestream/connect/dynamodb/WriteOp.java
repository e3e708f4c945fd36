package io.nudgestream.connect.dynamodb;

import java.util.Map;
import org.apache.kafka.connect.sink.SinkRecord;
import software.amazon.awssdk.services.dynamodb.model.AttributeValue;
import software.amazon.awssdk.services.dynamodb.model.DeleteRequest;
import software.amazon.awssdk.services.dynamodb.model.PutRequest;
import software.amazon.awssdk.services.dynamodb.model.WriteRequest;

/**
 * One write the table needs for one record: a put of the whole item, or (item == null) a delete of the key.
 *
 * @param keyAttributes the item's primary key as attributes (used for deletes)
 * @param item the full item, or null for a delete
 * @param record where it came from, so a write DynamoDB refuses can be reported to the dead-letter topic
 */
public record WriteOp(ItemKey key, Map<String, AttributeValue> keyAttributes, Map<String, AttributeValue> item,
                      SinkRecord record) {

    public boolean isDelete() {
        return item == null;
    }

    public WriteRequest toWriteRequest() {
        return isDelete()
            ? WriteRequest.builder().deleteRequest(DeleteRequest.builder().key(keyAttributes).build()).build()
            : WriteRequest.builder().putRequest(PutRequest.builder().item(item).build()).build();
    }
}
