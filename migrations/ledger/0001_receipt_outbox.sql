CREATE TABLE "receipt_outbox" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"request_id" text NOT NULL,
	"server" text NOT NULL,
	"block_start" integer NOT NULL,
	"block_end" integer NOT NULL,
	"message" jsonb NOT NULL,
	"signature" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"sent_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "receipt_outbox" ADD CONSTRAINT "receipt_outbox_request_id_requests_id_fk" FOREIGN KEY ("request_id") REFERENCES "public"."requests"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "receipt_outbox_request_server_blocks_idx" ON "receipt_outbox" USING btree ("request_id","server","block_start","block_end");--> statement-breakpoint
CREATE INDEX "receipt_outbox_pending_idx" ON "receipt_outbox" USING btree ("id") WHERE "receipt_outbox"."sent_at" is null;